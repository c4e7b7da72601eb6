package sources

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestGroup(t *testing.T) {
	s := newSink(t)
	g := NewGroup(Options{Retry: fastRetry})
	t.Cleanup(g.Stop)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	ping := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypePing, Namespace: "ns1", Name: "tick", Ping: &v1alpha1.PingSource{Schedule: "@every 1s"}}
	hook := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypeWebhook, Namespace: "ns1", Name: "hook", Webhook: &v1alpha1.WebhookSource{EventType: "com.example.a"}}
	bad := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypePing, Namespace: "ns1", Name: "bad", Ping: &v1alpha1.PingSource{Schedule: "* *"}}
	api := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypeAPIServer, Namespace: "ns1", Name: "api",
		APIServer: &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}}}

	errs := g.Sync(context.Background(), []Config{ping, hook, bad, api})
	if len(errs) != 2 || !strings.Contains(errs["ns1/bad"].Error(), "expected exactly 5 fields") || errs["ns1/api"] == nil {
		t.Errorf("errors %v", errs)
	}
	if got := g.Running(); !slices.Equal(got, []string{"ns1/hook", "ns1/tick"}) {
		t.Errorf("running %v", got)
	}
	eventually(t, "a ping event", func() bool { return len(s.events()) > 0 })

	post := func(path string) int {
		resp, err := http.Post(srv.URL+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(WebhookPath("ns1", "hook") + "/github"); code != http.StatusAccepted {
		t.Errorf("webhook: %d", code)
	}
	if code := post(WebhookPath("ns1", "tick")); code != http.StatusNotFound {
		t.Errorf("a ping source as webhook: %d", code)
	}

	// A changed webhook is restarted with the new spec; the ping source is dropped.
	hook2 := hook
	hook2.Webhook = &v1alpha1.WebhookSource{EventType: "com.example.b"}
	if errs := g.Sync(context.Background(), []Config{hook2}); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := g.Running(); !slices.Equal(got, []string{"ns1/hook"}) {
		t.Errorf("running %v", got)
	}
	n := len(s.events())
	if code := post(WebhookPath("ns1", "hook")); code != http.StatusAccepted {
		t.Errorf("webhook: %d", code)
	}
	// The ping source is stopped, so the one new event is the webhook's.
	got := s.events()
	if len(got) != n+1 || got[n].Header.Get("Ce-Type") != "com.example.b" {
		t.Errorf("after resync: %d events, last type %q", len(got)-n, got[len(got)-1].Header.Get("Ce-Type"))
	}
	g.Stop()
	if len(g.Running()) != 0 {
		t.Error("running after Stop")
	}
}
