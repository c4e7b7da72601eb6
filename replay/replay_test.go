package replay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/replay"
)

// setup creates the streams of Topics orders and orders-dlq in namespace
// shop as the control plane does.
func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders", "orders-dlq"} {
		cfg, err := compiler.StreamConfig(&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// store publishes a binary-mode event to a subject, with extra ce-
// attributes given as name, value pairs.
func store(t *testing.T, js jetstream.JetStream, subject, id string, ext ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", id)
	m.Header.Set("ce-source", "/shop")
	m.Header.Set("ce-type", "com.example.order.created")
	for i := 0; i+1 < len(ext); i += 2 {
		m.Header.Set("ce-"+ext[i], ext[i+1])
	}
	m.Data = []byte(`{}`)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// copies returns the ce-ids and headers on the Target's redelivery subject.
func copies(t *testing.T, js jetstream.JetStream, tg *replay.Target) ([]string, []nats.Header) {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), tg.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{tg.Subject}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var hs []nats.Header
	for {
		m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return ids, hs
		}
		ids = append(ids, m.Headers().Get("ce-id"))
		hs = append(hs, m.Headers())
	}
}

// TestJobRangeInSteps: a Job over sequences 3 to 6 of the Topic, taken two
// events a step, copies exactly those, in order, and resumes from its
// position; a Step after the last does nothing.
func TestJobRangeInSteps(t *testing.T) {
	js := setup(t)
	for i := 1; i <= 8; i++ {
		store(t, js, plan.Subject("shop", "orders"), fmt.Sprintf("e%d", i))
	}
	tg := replay.NewTarget("shop", "orders", "audit")
	job := &replay.Job{Target: tg, RunID: "r1", From: 3, Until: 6}
	var steps []int
	for !job.Done() {
		n, err := job.Step(context.Background(), js, 2)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, n)
		if len(steps) > 5 {
			t.Fatal("the job does not end")
		}
	}
	if !slices.Equal(steps, []int{2, 2}) && !slices.Equal(steps, []int{2, 2, 0}) {
		t.Errorf("steps handed over %v, want 2 then 2", steps)
	}
	ids, _ := copies(t, js, tg)
	if !slices.Equal(ids, []string{"e3", "e4", "e5", "e6"}) {
		t.Errorf("copied %v, want e3 … e6", ids)
	}
	// The same run repeated (a control plane that restarted before
	// recording its position) stores no second copy.
	again := &replay.Job{Target: tg, RunID: "r1", From: 3, Until: 6}
	if _, err := again.Step(context.Background(), js, 10); err != nil {
		t.Fatal(err)
	}
	if ids, _ := copies(t, js, tg); len(ids) != 4 {
		t.Errorf("a repeated run stored %d copies, want 4", len(ids))
	}
}

// TestJobDeadLetters: a Job over the dead letters of one Subscription takes
// only that Subscription's, matching its selection, strips the dead-letter
// extensions, and marks them, so a later Job without again skips them.
func TestJobDeadLetters(t *testing.T) {
	js := setup(t)
	dlq := plan.Subject("shop", "orders-dlq")
	for i := 1; i <= 4; i++ {
		store(t, js, dlq, fmt.Sprintf("a%d", i), "heraldsubscription", "shop/audit", "knativeerrorcode", "503",
			"heralddeadletteredat", "2026-12-04T10:00:00Z", "heraldattempts", "4", "region", "eu")
		store(t, js, dlq, fmt.Sprintf("b%d", i), "heraldsubscription", "shop/billing", "knativeerrorcode", "503")
	}
	store(t, js, dlq, "a5", "heraldsubscription", "shop/audit", "knativeerrorcode", "400")
	tg := replay.NewTarget("shop", "orders", "audit")
	tg.DeadLetterTopic = "shop/orders-dlq"

	dls, err := replay.ListDeadLetters(context.Background(), js, tg)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 5 || dls[0].ID != "a1" || dls[0].Code != "503" || dls[0].Attempts != 4 || dls[0].DeadLetteredAt.Format(time.RFC3339) != "2026-12-04T10:00:00Z" {
		t.Fatalf("dead letters of audit: %+v", dls)
	}
	filter, err := plan.ParseCESQL("knativeerrorcode = '503'")
	if err != nil {
		t.Fatal(err)
	}
	until, err := replay.LastSeq(context.Background(), js, plan.StreamName("shop", "orders-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	job := &replay.Job{Target: tg, RunID: "r1", From: 1, Until: until, DeadLetters: &replay.Selection{Filter: filter}}
	for !job.Done() {
		if _, err := job.Step(context.Background(), js, 3); err != nil {
			t.Fatal(err)
		}
	}
	ids, hs := copies(t, js, tg)
	if !slices.Equal(ids, []string{"a1", "a2", "a3", "a4"}) {
		t.Fatalf("redrove %v, want a1 … a4 (a5 is a 400, b* are billing's)", ids)
	}
	for _, h := range hs {
		if h.Get("ce-heraldsubscription") != "" || h.Get("ce-knativeerrorcode") != "" || h.Get("ce-heraldattempts") != "" || h.Get("ce-region") != "eu" {
			t.Errorf("a redriven event keeps the dead-letter extensions or lost its own: %v", h)
		}
	}
	dls, err = replay.ListDeadLetters(context.Background(), js, tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		if (dl.Redriven != nil) != (dl.ID != "a5") {
			t.Errorf("%s redriven at %v", dl.ID, dl.Redriven)
		}
	}
	later := &replay.Job{Target: tg, RunID: "r2", From: 1, Until: until, DeadLetters: &replay.Selection{}}
	n, err := later.Step(context.Background(), js, 100)
	if err != nil || n != 1 {
		t.Errorf("a later job redrove %d (%v), want only a5", n, err)
	}
}
