package dispatcher

import (
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/certtest"
	"github.com/herald-dev/herald/plan"
)

// newTLSSink is a sink serving https with a certificate of its own
// certificate authority, whose PEM certificate it returns.
func newTLSSink(t *testing.T, cn string) (*sink, string) {
	t.Helper()
	ca, cert := certtest.Server(t, cn)
	s := newSink(t, nil)
	s.srv.Close()
	s.srv = httptest.NewUnstartedServer(s.srv.Config.Handler)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// Refused handshakes are expected.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s, ca
}

// TestCACerts: a destination with caCerts is reached over https when its
// certificate chains to them, and only then: without them, or with another
// authority's, every attempt fails and the event is dead-lettered, itself
// over https to a sink with its own authority. Destinations naming the same
// bundle share one client, and a bundle no Subscription uses any more is
// dropped.
func TestCACerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	subscriber, subscriberCA := newTLSSink(t, "subscriber-ca")
	dead, deadCA := newTLSSink(t, "dead-letter-ca")
	subs := []subscription{
		{name: "trusted", uri: subscriber.url(), subscriberCA: subscriberCA, deadLetter: dead.url(), deadLetterCA: deadCA},
		{name: "system-roots", uri: subscriber.url(), deadLetter: dead.url(), deadLetterCA: deadCA},
		{name: "other-ca", uri: subscriber.url(), subscriberCA: deadCA, deadLetter: dead.url(), deadLetterCA: deadCA},
	}
	res := e.provision(newTopic("tls"), subs, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/tls", "ev-1")

	eventually(t, 20*time.Second, func() bool { return dead.count() == 2 }, "two dead letters")
	waitSettled(t, e, res.Plan.Stream, "sub_trusted")
	if n := subscriber.count(); n != 1 {
		t.Errorf("subscriber received %d requests, want 1 (from trusted only)", n)
	}
	got := map[string]bool{}
	for _, dl := range dead.requests() {
		got[dl.ce("heraldsubscription")] = true
		if dl.ce("id") != "ev-1" || dl.ce("heraldattempts") != "4" || dl.ce("knativeerrordest") != subscriber.url() {
			t.Errorf("dead letter %v, want ev-1 after 4 attempts to %s", dl.header, subscriber.url())
		}
	}
	if !got["default/system-roots"] || !got["default/other-ca"] {
		t.Errorf("dead letters of %v, want system-roots and other-ca", got)
	}

	cfg := func(name string) *subConfig {
		r.d.mu.Lock()
		defer r.d.mu.Unlock()
		return r.d.runners[plan.Key("default", "tls")+"/"+name].cfg.Load()
	}
	trusted, systemRoots, otherCA := cfg("trusted"), cfg("system-roots"), cfg("other-ca")
	if systemRoots.subscriberClient != r.d.client || trusted.subscriberClient == r.d.client {
		t.Error("only a destination with caCerts has a client of its own")
	}
	if trusted.deadLetterClient != otherCA.subscriberClient || otherCA.subscriberClient != systemRoots.deadLetterClient {
		t.Error("destinations with the same caCerts do not share a client")
	}
	clients := func() int {
		r.d.clientsMu.Lock()
		defer r.d.clientsMu.Unlock()
		return len(r.d.clients)
	}
	if n := clients(); n != 2 {
		t.Errorf("%d clients, want 2 (one per distinct bundle)", n)
	}

	// Without trusted, the subscriber's bundle is no longer used.
	res = e.provision(newTopic("tls"), subs[1:], nil)
	eventually(t, 10*time.Second, func() bool { return clients() == 1 }, "the unused client dropped")
}
