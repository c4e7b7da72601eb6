package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// TestSubscriptionPriorityLanes: the operator creates the lane consumers
// of a Subscription with priority enabled and publishes its weights in the
// plan; turning priority off deletes the lanes and the consumer reads
// every lane again; deleting a priority Subscription leaves no consumer.
func TestSubscriptionPriorityLanes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "urgent")
	s := newSubscription(ns, "fulfil", "urgent", "http://fulfil.example")
	s.Spec.Priority = &v1alpha1.Priority{Enabled: true, Weights: &v1alpha1.PriorityWeights{High: 10}}
	create(t, s)
	wantKStatus(t, s, status.CurrentStatus)
	stream := plan.StreamName(ns, "urgent")
	main := plan.ConsumerName("fulfil")
	lanes := func(want bool) error {
		for _, p := range []plan.Priority{plan.PriorityHigh, plan.PriorityLow} {
			info, err := prov.ConsumerInfo(ctx, stream, plan.LaneConsumer(main, p))
			if err != nil {
				return err
			}
			if (info != nil) != want {
				return fmt.Errorf("lane consumer %s exists: %v, want %v", plan.LaneConsumer(main, p), info != nil, want)
			}
			if want && !slices.Equal(info.Config.FilterSubjects, []string{plan.LaneSubject(ns, "urgent", p)}) {
				return fmt.Errorf("lane consumer %s filters %v", info.Name, info.Config.FilterSubjects)
			}
		}
		return nil
	}
	eventually(t, func() error {
		if err := lanes(true); err != nil {
			return err
		}
		e, err := planEntry(ns, "urgent", "fulfil")
		if err != nil || e == nil {
			return fmt.Errorf("plan entry: %v", err)
		}
		if e.Priority == nil || *e.Priority != (plan.LaneWeights{High: 10, Normal: 3, Low: 1}) {
			return fmt.Errorf("plan weights %+v, want 10, 3, 1", e.Priority)
		}
		return nil
	})

	// status.consumer counts the events of every lane.
	for _, subject := range []string{plan.LaneSubject(ns, "urgent", plan.PriorityHigh), plan.LaneSubject(ns, "urgent", plan.PriorityHigh),
		plan.Subject(ns, "urgent"), plan.LaneSubject(ns, "urgent", plan.PriorityLow)} {
		if _, err := js.Publish(ctx, subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		if c := s.Status.Consumer; c == nil || c.Pending != 4 || c.Name != main {
			return fmt.Errorf("status.consumer %+v, want %s with 4 pending over its lanes", c, main)
		}
		return nil
	})

	update(t, s, func(s *v1alpha1.Subscription) { s.Spec.Priority.Enabled = false })
	eventually(t, func() error {
		if err := lanes(false); err != nil {
			return err
		}
		info, err := prov.ConsumerInfo(ctx, stream, main)
		if err != nil || info == nil {
			return fmt.Errorf("consumer: %v", err)
		}
		if !slices.Contains(info.Config.FilterSubjects, plan.LaneSubjects(ns, "urgent")) {
			return fmt.Errorf("consumer filters %v, want the lanes among them", info.Config.FilterSubjects)
		}
		if e, err := planEntry(ns, "urgent", "fulfil"); err != nil || e == nil || e.Priority != nil {
			return fmt.Errorf("plan entry %+v (%v), want one without priority", e, err)
		}
		return nil
	})

	update(t, s, func(s *v1alpha1.Subscription) { s.Spec.Priority.Enabled = true })
	eventually(t, func() error { return lanes(true) })
	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(s); !apierrors.IsNotFound(err) {
			return errors.New("subscription still there")
		}
		if info, err := prov.ConsumerInfo(ctx, stream, main); err != nil || info != nil {
			return fmt.Errorf("consumer left behind: %v", err)
		}
		return lanes(false)
	})
}
