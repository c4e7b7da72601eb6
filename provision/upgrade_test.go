package provision_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// TestUpgradeAddsRedeliverySubjects: a stream and consumer created before
// Topics had redelivery and priority lane subjects (one subject,
// FilterSubject) are updated in place, keeping the consumer's position.
func TestUpgradeAddsRedeliverySubjects(t *testing.T) {
	js, p := setup(t)
	ctx := context.Background()
	tp := topic(v1alpha1.StorageFile)
	res := compile(t, tp, sub("audit", v1alpha1.OrderingUnordered, false))
	old := res.Stream
	old.Subjects = []string{plan.Subject("shop", "orders")}
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	oldCons := res.Consumers["audit"]
	oldCons.FilterSubjects = nil
	oldCons.FilterSubject = plan.Subject("shop", "orders")
	c, err := js.CreateConsumer(ctx, old.Name, oldCons)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, plan.Subject("shop", "orders"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := c.Fetch(2)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := p.Apply(ctx, res); err != nil {
		t.Fatalf("apply over the old stream and consumer: %v", err)
	}
	s, err := js.Stream(ctx, old.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, res.Stream.Subjects) {
		t.Errorf("stream subjects = %v, want %v", got, res.Stream.Subjects)
	}
	info, err := js.Consumer(ctx, old.Name, "sub_audit")
	if err != nil {
		t.Fatal(err)
	}
	ci := info.CachedInfo()
	if want := []string{plan.Subject("shop", "orders"), plan.RedeliverySubject("shop", "orders", "audit"), plan.LaneSubjects("shop", "orders")}; !slices.Equal(ci.Config.FilterSubjects, want) {
		t.Errorf("consumer filter subjects = %v (filter subject %q), want %v", ci.Config.FilterSubjects, ci.Config.FilterSubject, want)
	}
	if ci.NumPending != 1 || ci.AckFloor.Stream != 2 {
		t.Errorf("consumer lost its position: pending %d, ack floor %d; want 1 and 2", ci.NumPending, ci.AckFloor.Stream)
	}
}

// TestUpgradeAllowsSchedules: a Topic stream created before delayed
// delivery gets the schedule subject, AllowMsgSchedules and roll-ups in
// place, keeping its events, and then takes a schedule.
func TestUpgradeAllowsSchedules(t *testing.T) {
	js, p := setup(t)
	ctx := context.Background()
	res := compile(t, topic(v1alpha1.StorageFile), sub("audit", v1alpha1.OrderingUnordered, false))
	old := res.Stream
	old.Subjects = []string{plan.Subject("shop", "orders"), plan.RedeliverySubjects("shop", "orders")}
	old.AllowMsgSchedules, old.AllowRollup = false, false
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, plan.Subject("shop", "orders"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(ctx, res); err != nil {
		t.Fatalf("apply over the old stream: %v", err)
	}
	s, err := js.Stream(ctx, old.Name)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if !slices.Equal(info.Config.Subjects, res.Stream.Subjects) || !slices.Contains(info.Config.Subjects, plan.ScheduleSubjects("shop", "orders")) {
		t.Errorf("stream subjects = %v, want %v", info.Config.Subjects, res.Stream.Subjects)
	}
	if !info.Config.AllowMsgSchedules || !info.Config.AllowRollup {
		t.Errorf("AllowMsgSchedules %v, AllowRollup %v after the upgrade; want both", info.Config.AllowMsgSchedules, info.Config.AllowRollup)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d events after the upgrade, want 1", info.State.Msgs)
	}
	m := nats.NewMsg(plan.ScheduleSubject("shop", "orders", "t1"))
	m.Header.Set(jetstream.ScheduleHeader, "@at "+time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	m.Header.Set(jetstream.ScheduleTargetHeader, plan.Subject("shop", "orders"))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Errorf("schedule refused after the upgrade: %v", err)
	}
	if _, err := p.Apply(ctx, res); err != nil {
		t.Errorf("second apply: %v", err)
	}
}
