package dispatcher

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/dispatcher/plan"
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

// classify applies the Knative data-plane rules: 2xx succeed; 404, 408,
// 409, 429, 5xx, timeouts and connection errors (status 0) are retried;
// every other status is fatal.
func classify(status int) verdict {
	switch {
	case status == 0:
		return verdictRetry
	case status >= 200 && status < 300:
		return verdictSuccess
	case status == http.StatusNotFound, status == http.StatusRequestTimeout,
		status == http.StatusConflict, status == http.StatusTooManyRequests, status >= 500:
		return verdictRetry
	}
	return verdictFatal
}

// retryDelay is the wait before retrying after failed attempt number
// attempt (1 for the first). It is the policy's backoff, or the
// destination's Retry-After on a 429 or 503 when that is longer, capped by
// the policy's RetryAfterCap.
func retryDelay(d plan.Delivery, attempt, status int, retryAfter string, now time.Time) time.Duration {
	delay := d.Backoff(attempt)
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return delay
	}
	ra, ok := parseRetryAfter(retryAfter, now)
	if !ok {
		return delay
	}
	ra = min(ra, d.RetryAfterCap())
	return max(delay, ra)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3). Dates in the past mean no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
