package dispatcher

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// authTopic provisions default/<name> whose plan authenticates producers
// with rules, and starts a dispatcher checking tokens of a local issuer.
func authTopic(t *testing.T, name string, verifier bool, rules ...plan.PublishRule) (e *env, url string, stream string, iss *auth.LocalIssuer) {
	t.Helper()
	e = newEnv(t)
	res := e.provision(newTopic(name), nil, nil)
	p := res.Plan
	p.Audience = plan.TopicAudience("default", name)
	p.Publish = plan.PublishPolicy{Source: "publishers", Authenticate: true, Rules: rules}
	e.putPlan(&p)
	iss, err := auth.NewLocalIssuer(t.TempDir(), "herald-test", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{}
	if verifier {
		opts.Verifier = iss.Verifier()
	}
	r := e.start(nil, opts)
	r.waitAuthenticating(t, &p)
	return e, r.url + "/default/" + name, res.Stream.Name, iss
}

// waitAuthenticating waits until the dispatcher applied a plan of p's
// Topic that authenticates producers.
func (r *running) waitAuthenticating(t *testing.T, p *plan.TopicPlan) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		ts := r.d.topic(p.Namespace, p.Name)
		return ts != nil && ts.publish.authenticate
	}, "plan authenticating producers applied")
}

func mint(t *testing.T, iss *auth.LocalIssuer, subject, audience string) string {
	t.Helper()
	tok, err := iss.Mint(subject, audience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type authAnswer struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Index  *int   `json:"index"`
}

func TestIngressAuthorization(t *testing.T) {
	t.Parallel()
	shopA := plan.ServiceAccountSubject("shop", "a")
	e, url, stream, iss := authTopic(t, "orders", true,
		plan.PublishRule{Name: "publishers[0]", Subjects: []string{shopA}, Filters: []plan.Filter{{Prefix: map[string]string{"type": "shop.order."}}}},
		plan.PublishRule{Name: "publishers[1]", Subjects: []string{plan.NamespaceSubjects("default")}},
	)
	aud := plan.TopicAudience("default", "orders")
	tokA := mint(t, iss, shopA, aud)
	tokDefault := mint(t, iss, plan.ServiceAccountSubject("default", "x"), aud)
	tokOther := mint(t, iss, plan.ServiceAccountSubject("other", "x"), aud)
	batch := `[{"specversion":"1.0","id":"b1","source":"/s","type":"shop.order.created"},{"specversion":"1.0","id":"b2","source":"/s","type":"shop.refund"}]`

	tests := []struct {
		name     string
		header   map[string]string
		body     string
		status   int
		reason   string
		contains string
		index    int
		stored   uint64
	}{
		{name: "no token", header: binary("n1"), status: 401, reason: "missing"},
		{name: "wrong audience", header: binary("n2", "Authorization", "Bearer "+mint(t, iss, shopA, "other")), status: 401, reason: "wrong_audience"},
		{name: "admitted by its filter", header: binary("a1", "Authorization", "Bearer "+tokA, "Ce-Type", "shop.order.created"), status: 202, stored: 1},
		{name: "refused by its filter", header: binary("a2", "Authorization", "Bearer "+tokA, "Ce-Type", "shop.refund"), status: 403, reason: "forbidden",
			contains: `publishers[0] admits system:serviceaccount:shop:a only for events matching its filters; this event of type "shop.refund" does not`},
		{name: "namespace rule", header: binary("d1", "Authorization", "Bearer "+tokDefault), status: 202, stored: 1},
		{name: "lower-case scheme", header: binary("d2", "Authorization", "bearer "+tokDefault), status: 202, stored: 1},
		{name: "no rule for the subject", header: binary("o1", "Authorization", "Bearer "+tokOther), status: 403, reason: "forbidden",
			contains: "no publish rule admits system:serviceaccount:other:x (the Topic's publishers: publishers[0], publishers[1])"},
		{name: "batch with a refused event", header: map[string]string{"Content-Type": "application/cloudevents-batch+json", "Authorization": "Bearer " + tokA}, body: batch, status: 403, reason: "forbidden", index: 1},
		{name: "batch admitted", header: map[string]string{"Content-Type": "application/cloudevents-batch+json", "Authorization": "Bearer " + tokDefault}, body: batch, status: 202, stored: 2},
	}
	for _, tc := range tests {
		before := e.streamMsgs(stream)
		resp, body := post(t, url, tc.header, []byte(tc.body))
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
			continue
		}
		if got := e.streamMsgs(stream) - before; got != tc.stored {
			t.Errorf("%s: %d messages stored, want %d", tc.name, got, tc.stored)
		}
		if tc.status < 400 {
			continue
		}
		var a authAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("%s: body %s: %v", tc.name, body, err)
			continue
		}
		if a.Reason != tc.reason || !strings.Contains(a.Error, tc.contains) {
			t.Errorf("%s: answer %s, want reason %s and %q", tc.name, body, tc.reason, tc.contains)
		}
		if tc.index > 0 && (a.Index == nil || *a.Index != tc.index) {
			t.Errorf("%s: answer %s, want index %d", tc.name, body, tc.index)
		}
		if tc.status == 401 {
			want := `Bearer realm="herald"`
			if tc.reason != "missing" {
				want += `, error="invalid_token"`
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, want) {
				t.Errorf("%s: WWW-Authenticate %q, want prefix %q", tc.name, got, want)
			}
		}
	}
}

// TestIngressAuthWithoutVerifier: a Topic that authenticates producers on
// a dispatcher without a verifier answers 503, never accepting events.
func TestIngressAuthWithoutVerifier(t *testing.T) {
	t.Parallel()
	e, url, stream, iss := authTopic(t, "orders", false, plan.PublishRule{Name: "any", Subjects: []string{"*"}})
	tok := mint(t, iss, "system:serviceaccount:default:a", plan.TopicAudience("default", "orders"))
	resp, body := post(t, url, binary("x", "Authorization", "Bearer "+tok), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"reason":"unavailable"`) {
		t.Fatalf("answer %d %s, want 503 with Retry-After", resp.StatusCode, body)
	}
	if n := e.streamMsgs(stream); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}

// TestIngressDenyAll: deny-all refuses every authenticated producer.
func TestIngressDenyAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("orders"), nil, nil)
	p := res.Plan
	p.Audience = plan.TopicAudience("default", "orders")
	p.Publish = plan.PublishPolicy{Source: string(plan.PublishDenyAll), Authenticate: true}
	e.putPlan(&p)
	iss, err := auth.NewLocalIssuer(t.TempDir(), "herald-test", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(nil, Options{Verifier: iss.Verifier()})
	r.waitAuthenticating(t, &p)
	tok := mint(t, iss, "system:serviceaccount:default:a", plan.TopicAudience("default", "orders"))
	resp, body := post(t, r.url+"/default/orders", binary("x", "Authorization", "Bearer "+tok), nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "no publish rule admits system:serviceaccount:default:a (policy deny-all)") {
		t.Fatalf("answer %d %s, want 403 naming deny-all", resp.StatusCode, body)
	}
	if n := e.streamMsgs(res.Stream.Name); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
}

// FuzzPublishPolicy evaluates a one-rule policy for arbitrary subjects,
// patterns and event types: the event is admitted exactly when the
// pattern matches the subject and the type has the rule's prefix, and a
// refusal names the rule or the policy.
func FuzzPublishPolicy(f *testing.F) {
	for _, s := range [][4]string{
		{"system:serviceaccount:shop:*", "system:serviceaccount:shop:a", "shop.order.created", "shop."},
		{"system:serviceaccount:shop:*", "system:serviceaccount:other:a", "shop.order", ""},
		{"*", "", "", ""},
		{"system:serviceaccount:shop:a", "system:serviceaccount:shop:ab", "t", "t"},
		{"**", "*", "\x00", "\xff"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, pattern, subject, typ, prefix string) {
		rule := plan.PublishRule{Name: "publishers[0]", Subjects: []string{pattern}}
		if prefix != "" {
			rule.Filters = []plan.Filter{{Prefix: map[string]string{"type": prefix}}}
		}
		pp, err := compilePublishPolicy(&plan.TopicPlan{Namespace: "ns", Name: "t",
			Publish: plan.PublishPolicy{Source: "publishers", Authenticate: true, Rules: []plan.PublishRule{rule}}})
		if err != nil {
			t.Fatal(err)
		}
		e := &ce.Event{Attrs: []ce.Attribute{{Name: "type", Value: typ}}}
		adm := pp.admit(subject)
		msg := adm.refusal(e)
		want := plan.SubjectMatches(pattern, subject) && strings.HasPrefix(typ, prefix)
		if (msg == "") != want {
			t.Fatalf("pattern %q subject %q type %q prefix %q: refusal %q, want admitted %v", pattern, subject, typ, prefix, msg, want)
		}
		if msg != "" && !strings.Contains(msg, "publishers[0]") {
			t.Fatalf("refusal %q names no rule", msg)
		}
	})
}
