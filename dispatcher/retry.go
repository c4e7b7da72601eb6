package dispatcher

import (
	"net/http"
	"time"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// verdict is what an attempt's outcome means for the event.
type verdict int

const (
	// verdictSuccess: the destination took the event.
	verdictSuccess verdict = iota
	// verdictRetry: try again later, while attempts remain.
	verdictRetry
	// verdictFatal: retrying cannot help; dead-letter now.
	verdictFatal
)

// classify applies the Knative data-plane rules: 2xx succeed; what
// ce.Retryable names (timeouts and connection errors as status 0) is
// retried; every other status is fatal.
func classify(status int) verdict {
	switch {
	case status >= 200 && status < 300:
		return verdictSuccess
	case ce.Retryable(status):
		return verdictRetry
	}
	return verdictFatal
}

// retryDelay is the wait before retrying after failed attempt number
// attempt (1 for the first). It is the policy's backoff, or the
// destination's Retry-After on a 429 or 503 when that is longer, capped by
// the policy's RetryAfterCap.
func retryDelay(d plan.Delivery, attempt, status int, retryAfter string, now time.Time) time.Duration {
	delay := retryBackoff(d, attempt)
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return delay
	}
	ra, ok := ce.ParseRetryAfter(retryAfter, now)
	if !ok {
		return delay
	}
	ra = min(ra, d.RetryAfterCap())
	return max(delay, ra)
}

// retryBackoff is the wait before retry number attempt (1 for the first retry)
// under d's policy.
func retryBackoff(d plan.Delivery, attempt int) time.Duration {
	p := ce.Exponential
	if d.BackoffPolicy == plan.BackoffLinear {
		p = ce.Linear
	}
	return ce.Backoff(p, d.BackoffDelay.Duration(), d.BackoffMax.Duration(), attempt)
}
