package dispatcher

import (
	"bytes"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// BenchmarkIngressAuth: the ingress's per-request work without I/O, with
// the Topic open (off) and with a policy authenticating producers (on): a
// token verified once then answered from the cache, a namespace rule, and
// a rule whose filter looks at the event.
func BenchmarkIngressAuth(b *testing.B) {
	iss, err := auth.NewLocalIssuer(b.TempDir(), "herald-bench", "system:serviceaccount:default:herald")
	if err != nil {
		b.Fatal(err)
	}
	p := &plan.TopicPlan{Namespace: "default", Name: "bench", Stream: "HERALD_default_bench", Subject: "herald.default.bench",
		Audience: plan.TopicAudience("default", "bench")}
	tok, err := iss.Mint("system:serviceaccount:default:producer", p.Audience, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	v := iss.Verifier()
	for _, c := range []struct {
		name   string
		policy plan.PublishPolicy
	}{
		{"off", plan.PublishPolicy{Source: string(plan.PublishAllowAll)}},
		{"on", plan.PublishPolicy{Source: string(plan.PublishAllowSameNamespace), Authenticate: true,
			Rules: []plan.PublishRule{{Name: "allow-same-namespace", Subjects: []string{plan.NamespaceSubjects("default")}}}}},
		{"on-filtered", plan.PublishPolicy{Source: "publishers", Authenticate: true,
			Rules: []plan.PublishRule{{Name: "publishers[0]", Subjects: []string{plan.NamespaceSubjects("default")},
				Filters: []plan.Filter{{Prefix: map[string]string{"type": "dev.herald."}}}}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			pl := *p
			pl.Publish = c.policy
			pp, err := compilePublishPolicy(&pl)
			if err != nil {
				b.Fatal(err)
			}
			t := &topicState{plan: &pl, publish: pp}
			h := benchIngressHeader()
			h.Set("Authorization", "Bearer "+tok)
			body := bytes.Repeat([]byte("x"), 1024)
			b.ReportAllocs()
			for b.Loop() {
				var adm admission
				if t.publish.authenticate {
					token, err := auth.BearerToken(h)
					if err != nil {
						b.Fatal(err)
					}
					id, err := v.Verify(b.Context(), token, t.publish.audience)
					if err != nil {
						b.Fatal(err)
					}
					adm = t.publish.admit(id.Subject)
				}
				e, err := ce.DecodeBinary(h, body)
				if err != nil {
					b.Fatal(err)
				}
				if t.publish.authenticate && adm.refusal(e) != "" {
					b.Fatal("refused")
				}
				benchMsgSink = storedMsg(t, e, "")
			}
		})
	}
}

// BenchmarkEndToEndAuth is BenchmarkEndToEnd's fanout1 with the Topic open
// (off) and authenticating its producers (on: every request carries the
// same token, verified once, under an allow-same-namespace rule); compare
// the two rates of one run.
func BenchmarkEndToEndAuth(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			sink, delivered := benchSink(b, 0)
			res := e.provision(newTopic("bench"), []subscription{{name: "s0", uri: sink, spec: func(s *v1alpha1.SubscriptionSpec) {
				s.Delivery = fastRetry(10)
			}}}, nil)
			p := res.Plan
			var opts Options
			authz := ""
			if on {
				iss, err := auth.NewLocalIssuer(b.TempDir(), "herald-bench", "system:serviceaccount:default:herald")
				if err != nil {
					b.Fatal(err)
				}
				p.Audience = plan.TopicAudience("default", "bench")
				p.Publish = plan.PublishPolicy{Source: string(plan.PublishAllowSameNamespace), Authenticate: true,
					Rules: []plan.PublishRule{{Name: "allow-same-namespace", Subjects: []string{plan.NamespaceSubjects("default")}}}}
				e.putPlan(&p)
				tok, err := iss.Mint("system:serviceaccount:default:producer", p.Audience, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				opts.Verifier, authz = iss.Verifier(), "Bearer "+tok
			}
			r := e.start(nil, opts)
			r.waitDelivering(b, &p)
			eventually(b, 10*time.Second, func() bool {
				ts := r.d.topic("default", "bench")
				return ts != nil && ts.publish.authenticate == on
			}, "policy applied")
			produceWith(b, r.url+"/default/bench", authz, delivered, int64(b.N))
		})
	}
}
