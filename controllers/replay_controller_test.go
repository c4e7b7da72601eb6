package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// subjectIDs returns the ce-id of every message of stream on subject.
func subjectIDs(t *testing.T, stream, subject string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return ids
		}
		ids = append(ids, m.Headers().Get("ce-id"))
	}
}

// TestReplayFromTime: a Subscription that had 100 events is replayed from
// the time of event 50: events 50 to 100 are handed to it again, and to no
// other Subscription; the Replay reports 51 and is Complete and Ready.
func TestReplayFromTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	audit, other := newSubscription(ns, "audit", "orders", "http://audit.example/"), newSubscription(ns, "other", "orders", "http://other.example/")
	create(t, audit)
	create(t, other)
	for _, s := range []*v1alpha1.Subscription{audit, other} {
		eventually(t, func() error {
			if err := get(s); err != nil {
				return err
			}
			return wantCondition(s.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
		})
	}

	publish := func(i int) {
		t.Helper()
		m := nats.NewMsg(plan.Subject(ns, "orders"))
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", fmt.Sprintf("e%d", i))
		m.Header.Set("ce-source", "/test")
		m.Header.Set("ce-type", "dev.herald.test")
		m.Data = []byte(`{}`)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 50; i++ {
		publish(i)
	}
	// Replay.from.time has a resolution of a second: start event 50 on the
	// next one.
	from := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(from) + 10*time.Millisecond)
	for i := 50; i <= 100; i++ {
		publish(i)
	}

	rp := &v1alpha1.Replay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "since-50"},
		Spec: v1alpha1.ReplaySpec{
			Subscription: "audit",
			From:         v1alpha1.ReplayFrom{Time: &metav1.Time{Time: from}},
		},
	}
	create(t, rp)
	eventually(t, func() error {
		if err := get(rp); err != nil {
			return err
		}
		return wantCondition(rp.Status.Conditions, v1alpha1.ConditionComplete, metav1.ConditionTrue, "", "replayed 51 events")
	})
	if rp.Status.Replayed != 51 || rp.Status.FromSequence != 50 || rp.Status.UntilSequence != 100 || rp.Status.CompletionTime == nil {
		t.Errorf("status %+v, want 51 replayed, sequences 50 to 100", rp.Status)
	}
	if err := wantCondition(rp.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "replayed 51 events to Subscription audit"); err != nil {
		t.Error(err)
	}
	wantKStatus(t, rp, status.CurrentStatus)

	stream := plan.StreamName(ns, "orders")
	got := subjectIDs(t, stream, plan.RedeliverySubject(ns, "orders", "audit"))
	if len(got) != 51 || got[0] != "e50" || got[50] != "e100" {
		t.Errorf("audit's redelivery subject holds %v, want e50 … e100", got)
	}
	if got := subjectIDs(t, stream, plan.RedeliverySubject(ns, "orders", "other")); len(got) != 0 {
		t.Errorf("other's redelivery subject holds %v, want nothing", got)
	}
	for name, want := range map[string]uint64{"audit": 151, "other": 100} {
		c, err := js.Consumer(ctx, stream, plan.ConsumerName(name))
		if err != nil {
			t.Fatal(err)
		}
		if info, err := c.Info(ctx); err != nil || info.NumPending != want {
			t.Errorf("consumer of %s has %d pending (%v), want %d", name, info.NumPending, err, want)
		}
	}
}

// TestReplayWaitsForItsSubscription: a Replay of a Subscription that does
// not exist waits, saying so, and runs once the Subscription is Ready.
func TestReplayWaitsForItsSubscription(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	rp := &v1alpha1.Replay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "early"},
		Spec:       v1alpha1.ReplaySpec{Subscription: "late", From: v1alpha1.ReplayFrom{Sequence: new(int64(1))}},
	}
	create(t, rp)
	eventually(t, func() error {
		if err := get(rp); err != nil {
			return err
		}
		return wantCondition(rp.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound, "Subscription "+ns+"/late not found")
	})
	create(t, newSubscription(ns, "late", "orders", "http://late.example/"))
	eventually(t, func() error {
		if err := get(rp); err != nil {
			return err
		}
		return wantCondition(rp.Status.Conditions, v1alpha1.ConditionComplete, metav1.ConditionTrue, "", "replayed 0 events")
	})
}

// TestSubscriptionReportsDeadLetters: the dead letters dispatchers count
// (any replica, any restart) show in the Subscription's status.
func TestSubscriptionReportsDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	s := newSubscription(ns, "failing", "orders", "http://failing.example/")
	create(t, s)
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		if s.Status.DeadLetters == nil || s.Status.DeadLetters.Count != 0 || s.Status.DeadLetters.LastTime != nil {
			return fmt.Errorf("dead letters %+v, want a zero count", s.Status.DeadLetters)
		}
		return nil
	})
	for i := range 3 {
		m := nats.NewMsg(plan.DeadLetterCounter(ns, "orders", "failing"))
		m.Header.Set("Nats-Incr", "1")
		m.Header.Set("Nats-Msg-Id", fmt.Sprintf("deadletter:%d", i))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		if dl := s.Status.DeadLetters; dl == nil || dl.Count != 3 || dl.LastTime == nil || time.Since(dl.LastTime.Time) > time.Minute {
			return fmt.Errorf("dead letters %+v, want 3 just now", dl)
		}
		return nil
	})
}

// TestReplayOfDeadLettersNeedsADeadLetterTopic: a Replay of dead letters
// says what is missing when the Subscription's dead-letter sink is no
// Topic, and stalls on a filter that is no CESQL.
func TestReplayOfDeadLettersNeedsADeadLetterTopic(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	s := newSubscription(ns, "audit", "orders", "http://audit.example/")
	create(t, s)
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		return wantCondition(s.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	noTopic := &v1alpha1.Replay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-dlq"},
		Spec:       v1alpha1.ReplaySpec{Subscription: "audit", From: v1alpha1.ReplayFrom{DeadLetters: &v1alpha1.DeadLetterSelector{}}},
	}
	badFilter := &v1alpha1.Replay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-filter"},
		Spec:       v1alpha1.ReplaySpec{Subscription: "audit", From: v1alpha1.ReplayFrom{DeadLetters: &v1alpha1.DeadLetterSelector{Filter: "type = "}}},
	}
	create(t, noTopic)
	create(t, badFilter)
	eventually(t, func() error {
		if err := get(noTopic); err != nil {
			return err
		}
		return wantCondition(noTopic.Status.Conditions, v1alpha1.ConditionComplete, metav1.ConditionFalse, v1alpha1.ReasonNotAddressable, "has no dead-letter Topic")
	})
	eventually(t, func() error {
		if err := get(badFilter); err != nil {
			return err
		}
		return wantCondition(badFilter.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "deadLetters.filter")
	})
	wantKStatus(t, badFilter, status.FailedStatus)
}
