package devmode

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

func TestChanges(t *testing.T) {
	sub := func(name, uri string, f ...plan.Filter) plan.SubscriptionPlan {
		return plan.SubscriptionPlan{Name: name, Consumer: plan.ConsumerName(name), SubscriberURI: uri, Filters: f}
	}
	topic := func(name string, maxAge time.Duration, subs ...plan.SubscriptionPlan) TopicStatus {
		return TopicStatus{Namespace: "default", Name: name, URL: "http://i/default/" + name,
			Stream: jetstream.StreamConfig{Name: plan.StreamName("default", name), MaxAge: maxAge},
			Plan:   plan.TopicPlan{Namespace: "default", Name: name, Subscriptions: subs}}
	}
	prev := &Status{Topics: []TopicStatus{
		topic("orders", 0, sub("a", "http://a/"), sub("gone", "http://g/")),
		topic("old", 0),
		topic("broken", 0),
	}}
	cur := &Status{
		Topics: []TopicStatus{
			topic("orders", time.Hour, sub("a", "http://a2/", plan.Filter{Exact: map[string]string{"type": "x"}}), sub("b", "http://b/")),
			topic("new", 0, sub("c", "http://c/")),
		},
		Deleted: []string{"default/old"},
	}
	got := Changes(prev, cur)
	want := []string{
		"~ topic default/orders: stream max_age changed",
		`~ subscription default/a: filters, subscriberUri changed; filters now: type = "x"`,
		"+ subscription default/b -> http://b/, filters: none (every event)",
		"- subscription default/gone",
		"+ topic default/new at http://i/default/new",
		"+ subscription default/c -> http://c/, filters: none (every event)",
		"? topic default/broken is no longer applied (see the errors)",
		"- topic default/old (deleted with its events)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Changes =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	cur.Deleted = nil
	if got := Changes(cur, cur); len(got) != 0 {
		t.Errorf("Changes of equal states = %v", got)
	}
}
