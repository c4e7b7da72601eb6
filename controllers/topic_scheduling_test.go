package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// TestTopicScheduling: the operator gives a Topic's stream the schedule
// subject and setting, and its plan the Topic's maxDelay; a stream that
// existed before delayed delivery (without either) is updated in place,
// keeping its events.
func TestTopicScheduling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	js := prov.JetStream()

	old, err := compiler.StreamConfig(newTopic(ns, "older"))
	if err != nil {
		t.Fatal(err)
	}
	old.Subjects = []string{plan.Subject(ns, "older"), plan.RedeliverySubjects(ns, "older")}
	old.AllowMsgSchedules, old.AllowRollup = false, false
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, plan.Subject(ns, "older"), []byte("kept")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		maxDelay *v1alpha1.Duration
		want     time.Duration
		events   uint64
	}{
		{"later", ptrDuration("PT1H"), time.Hour, 0},
		{"older", nil, compiler.DefaultMaxDelay, 1},
	} {
		topic := newTopic(ns, tc.name)
		if tc.maxDelay != nil {
			topic.Spec.Scheduling = &v1alpha1.TopicScheduling{MaxDelay: tc.maxDelay}
		}
		create(t, topic)
		makeAvailable(t, ns, tc.name+"-dispatcher")
		eventually(t, func() error {
			if err := get(topic); err != nil {
				return err
			}
			return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
		})
		info, err := prov.StreamInfo(ctx, plan.StreamName(ns, tc.name))
		if err != nil || info == nil {
			t.Fatalf("%s: stream: %v %v", tc.name, info, err)
		}
		if !info.Config.AllowMsgSchedules || !slices.Contains(info.Config.Subjects, plan.ScheduleSubjects(ns, tc.name)) {
			t.Errorf("%s: stream allows schedules %v on subjects %v; want them on %s", tc.name,
				info.Config.AllowMsgSchedules, info.Config.Subjects, plan.ScheduleSubjects(ns, tc.name))
		}
		if info.State.Msgs != tc.events {
			t.Errorf("%s: stream holds %d events, want %d", tc.name, info.State.Msgs, tc.events)
		}
		eventually(t, func() error {
			p, err := prov.GetPlan(ctx, ns, tc.name)
			if err != nil || p == nil {
				return fmt.Errorf("plan: %v %v", p, err)
			}
			if p.MaxDelay.Duration() != tc.want {
				return fmt.Errorf("plan maxDelay %v, want %v", p.MaxDelay.Duration(), tc.want)
			}
			return nil
		})
	}
}

func ptrDuration(s string) *v1alpha1.Duration {
	d := v1alpha1.Duration(s)
	return &d
}
