package controllers

import (
	"errors"
	"testing"
	"time"
)

func TestSummarizeStepErrors(t *testing.T) {
	stalling := &Stalling{Reason: "InvalidSpec", Err: errors.New("bad spec")}
	tests := []struct {
		name      string
		errs      []error
		stalled   string
		retry     int
		requeue   time.Duration
		transient bool
	}{
		{name: "none"},
		{name: "stalling", errs: []error{stalling}, stalled: "bad spec"},
		{name: "waiting", errs: []error{&Waiting{Err: errors.New("w"), RequeueAfter: 5 * time.Second}, &Waiting{Err: errors.New("v"), RequeueAfter: 2 * time.Second}}, requeue: 2 * time.Second},
		{name: "waiting for a watch", errs: []error{&Waiting{Err: errors.New("w")}}},
		{name: "generic", errs: []error{&Generic{Err: errors.New("nats down")}}, retry: 1, transient: true},
		{name: "plain error is generic", errs: []error{errors.New("api down")}, retry: 1, transient: true},
		{name: "joined", errs: []error{errors.Join(stalling, &Stalling{Err: errors.New("worse")}, errors.New("api down"))},
			stalled: "bad spec; worse", retry: 1, transient: true},
		{name: "stalling and waiting", errs: []error{stalling, &Waiting{Err: errors.New("w"), RequeueAfter: time.Second}}, stalled: "bad spec", requeue: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := summarize(tt.errs)
			if got := out.stalledMessage(); got != tt.stalled {
				t.Errorf("stalled %q, want %q", got, tt.stalled)
			}
			if len(out.retry) != tt.retry {
				t.Errorf("retry %v, want %d errors", out.retry, tt.retry)
			}
			if time.Duration(out.requeue) != tt.requeue {
				t.Errorf("requeue %v, want %v", time.Duration(out.requeue), tt.requeue)
			}
			transient := false
			for _, err := range tt.errs {
				transient = transient || isTransient(err)
			}
			if transient != tt.transient {
				t.Errorf("transient %v, want %v", transient, tt.transient)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	d := 10 * time.Second
	for range 100 {
		if j := jitter(d); j < d || j > d+d/10 {
			t.Fatalf("jitter(%v) = %v, want within 10%%", d, j)
		}
	}
	if jitter(0) != 0 {
		t.Error("jitter(0) != 0")
	}
}
