package controllers

import (
	"time"
)

// The errors a reconcile step returns decide the Stalled condition and the
// requeue (after fluxcd/source-controller's internal/error). A step sets its
// own condition either way; a plain error counts as a *Generic.

// Stalling is a step that cannot make progress until the spec changes: the
// object is Stalled, and it is not requeued (a spec change reconciles it).
type Stalling struct {
	// Reason is the Stalled condition's reason.
	Reason string
	Err    error
}

func (e *Stalling) Error() string { return e.Err.Error() }
func (e *Stalling) Unwrap() error { return e.Err }

// Waiting is a step waiting for something outside the spec, such as a
// referenced object: it is requeued after RequeueAfter (zero: only when a
// watch fires).
type Waiting struct {
	Reason       string
	Err          error
	RequeueAfter time.Duration
}

func (e *Waiting) Error() string { return e.Err.Error() }
func (e *Waiting) Unwrap() error { return e.Err }

// Generic is a transient failure, such as an API server or NATS error: the
// reconcile returns it and controller-runtime retries with backoff. Later
// steps do not run unless the reconciler's steps are independent.
type Generic struct {
	Reason string
	Err    error
}

func (e *Generic) Error() string { return e.Err.Error() }
func (e *Generic) Unwrap() error { return e.Err }
