package compiler_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

func duration(s string) *v1alpha1.Duration {
	d := v1alpha1.Duration(s)
	return &d
}

// TestScheduling: a Topic's stream takes message schedules on its
// ScheduleSubjects unless it discards new events, and the plan's MaxDelay
// is scheduling.maxDelay, default P7D, at most retention.maxAge.
func TestScheduling(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.TopicSpec
		schedules bool
		maxDelay  time.Duration
	}{
		{"default", v1alpha1.TopicSpec{}, true, compiler.DefaultMaxDelay},
		{"max delay", v1alpha1.TopicSpec{Scheduling: &v1alpha1.TopicScheduling{MaxDelay: duration("PT1H")}}, true, time.Hour},
		{"off", v1alpha1.TopicSpec{Scheduling: &v1alpha1.TopicScheduling{MaxDelay: duration("PT0S")}}, true, 0},
		{"capped by max age", v1alpha1.TopicSpec{Retention: &v1alpha1.TopicRetention{MaxAge: duration("PT10M")}}, true, 10 * time.Minute},
		{"below max age", v1alpha1.TopicSpec{Retention: &v1alpha1.TopicRetention{MaxAge: duration("P30D")},
			Scheduling: &v1alpha1.TopicScheduling{MaxDelay: duration("P1D")}}, true, 24 * time.Hour},
		{"discard new", v1alpha1.TopicSpec{Retention: &v1alpha1.TopicRetention{Discard: v1alpha1.DiscardNew}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := compiler.Compile(topic(tc.spec), nil)
			if err != nil {
				t.Fatal(err)
			}
			s := res.Stream
			has := slices.Contains(s.Subjects, plan.ScheduleSubjects("shop", "orders"))
			if has != tc.schedules || s.AllowMsgSchedules != tc.schedules || s.AllowRollup != tc.schedules {
				t.Errorf("schedule subject %v, AllowMsgSchedules %v, AllowRollup %v; want %v", has, s.AllowMsgSchedules, s.AllowRollup, tc.schedules)
			}
			if got := res.Plan.MaxDelay.Duration(); got != tc.maxDelay {
				t.Errorf("plan MaxDelay = %v, want %v", got, tc.maxDelay)
			}
		})
	}
	if _, err := compiler.Compile(topic(v1alpha1.TopicSpec{Scheduling: &v1alpha1.TopicScheduling{MaxDelay: duration("a week")}}), nil); err == nil {
		t.Error("an invalid maxDelay compiled")
	}
}

// TestConsumersSkipSchedules: no Subscription's consumer reads the
// schedule subjects, so only the copy a schedule produces is delivered.
func TestConsumersSkipSchedules(t *testing.T) {
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), []compiler.ResolvedSubscription{resolved("audit", v1alpha1.SubscriptionSpec{})})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Consumers["audit"].FilterSubjects {
		if strings.HasPrefix(f, "herald.scheduled.") {
			t.Errorf("consumer reads schedule subject %s", f)
		}
	}
}
