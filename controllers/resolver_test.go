package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/internal/resolvetest"
	"github.com/herald-dev/herald/resolve"
)

// TestResolveTable runs the Destinations herald dev's TestResolveTable runs
// through the operator: each is a Subscription's subscriber, and the
// Subscription's status and its Topic's plan must carry the same URI.
func TestResolveTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := readyTopic(t, ns, resolvetest.Topic)
	addr := topic.Status.Address.URL
	r := &controllers.Resolver{Reader: k8s, ClusterDomain: "cluster.local"}
	for _, c := range resolvetest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			got, err := resolve.Destination(ctx, r, ns, &c.Destination)
			if err := check(c, ns, addr, got.URI, err); err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if got.Audience != c.AudienceIn(ns) {
				t.Fatalf("resolve: audience %q, want %q", got.Audience, c.AudienceIn(ns))
			}

			sub := newSubscription(ns, c.Name, resolvetest.Topic, "")
			sub.Spec.Subscriber = c.Destination
			create(t, sub)
			eventually(t, func() error {
				if err := get(sub); err != nil {
					return err
				}
				if c.Reason != "" {
					return wantCondition(sub.Status.Conditions, v1alpha1.ConditionSubscriberResolved, metav1.ConditionFalse, c.Reason, c.MessageIn(ns))
				}
				if err := check(c, ns, addr, sub.Status.SubscriberURI, nil); err != nil {
					return fmt.Errorf("status.subscriberUri: %w", err)
				}
				e, err := planEntry(ns, resolvetest.Topic, c.Name)
				if err != nil || e == nil {
					return fmt.Errorf("plan entry %v: %v", e, err)
				}
				if e.SubscriberAudience != c.AudienceIn(ns) {
					return fmt.Errorf("plan subscriberAudience %q, want %q", e.SubscriberAudience, c.AudienceIn(ns))
				}
				return check(c, ns, addr, e.SubscriberURI, nil)
			})
		})
	}
}

func check(c resolvetest.Case, ns, addr, got string, err error) error {
	if c.Reason == "" {
		if err != nil || got != c.URI(addr) {
			return fmt.Errorf("%q, %v; want %q", got, err, c.URI(addr))
		}
		return nil
	}
	var re *resolve.Error
	if !errors.As(err, &re) || re.Reason != c.Reason || !strings.Contains(re.Message, c.MessageIn(ns)) {
		return fmt.Errorf("%q, %v; want a %s error containing %q", got, err, c.Reason, c.MessageIn(ns))
	}
	return nil
}
