package ce

import (
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retryable reports whether a delivery that got HTTP status code status
// (0: no response at all) may succeed when tried again. The set is the
// Knative data-plane spec's, as knative/eventing's SelectiveRetry applies
// it; every other status is the destination refusing the event for good.
func Retryable(status int) bool {
	switch {
	case status == 0:
		// No response: connection refused or reset, or a timeout. The
		// destination may be restarting.
		return true
	case status == http.StatusNotFound:
		// The destination may not be ready yet: a Service or route that is
		// still being created answers 404 for a while.
		return true
	case status == http.StatusRequestTimeout:
		// The destination gave up waiting for the request; a later one may
		// be served in time.
		return true
	case status == http.StatusConflict:
		// A transient conflict on the destination's side, such as a write
		// racing another; the same request may succeed later.
		return true
	case status == http.StatusTooManyRequests:
		// Backpressure: the destination asks for the event later, often
		// with Retry-After.
		return true
	case status >= 500 && status < 600:
		// The destination failed, not the event.
		return true
	}
	return false
}

// maxRetryAfter bounds the wait a Retry-After value can ask for.
const maxRetryAfter = 365 * 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3):
// delay-seconds or an HTTP-date, relative to now. A date in the past means
// no wait. ok is false for an empty or unreadable value.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// BackoffPolicy is how the wait between attempts grows.
type BackoffPolicy int

// Backoff policies, named as in Knative's delivery spec.
const (
	// Exponential doubles the wait per attempt: base, 2·base, 4·base, …
	Exponential BackoffPolicy = iota
	// Linear grows the wait by base per attempt: base, 2·base, 3·base, …
	Linear
)

// Backoff is the wait before retry number attempt (1 for the first retry;
// smaller counts as 1) under policy p, starting at base and capped by limit
// (no cap when limit ≤ 0). It never overflows: a wait too long for a
// time.Duration is limit, or the longest Duration without one.
func Backoff(p BackoffPolicy, base, limit time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	n := time.Duration(max(attempt, 1))
	var w time.Duration
	switch {
	case p == Linear && base <= math.MaxInt64/n:
		w = base * n
	case p != Linear && n-1 <= time.Duration(63-bits.Len64(uint64(base))):
		w = base << (n - 1)
	default:
		w = math.MaxInt64
	}
	if limit > 0 && w > limit {
		w = limit
	}
	return w
}
