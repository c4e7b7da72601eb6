package dispatcher

import (
	"net/http"
	"testing"
	"time"

	"github.com/herald-dev/herald/plan"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := map[int]verdict{
		0: verdictRetry, 200: verdictSuccess, 201: verdictSuccess, 202: verdictSuccess, 204: verdictSuccess,
		301: verdictFatal, 400: verdictFatal, 401: verdictFatal, 403: verdictFatal, 404: verdictRetry,
		405: verdictFatal, 408: verdictRetry, 409: verdictRetry, 410: verdictFatal, 413: verdictFatal,
		422: verdictFatal, 429: verdictRetry, 500: verdictRetry, 502: verdictRetry, 503: verdictRetry, 504: verdictRetry,
	}
	for status, want := range tests {
		if got := classify(status); got != want {
			t.Errorf("classify(%d) = %v, want %v", status, got, want)
		}
	}
	r := result{err: http.ErrHandlerTimeout}
	if r.verdict() != verdictRetry {
		t.Error("a transport error is not retried")
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := plan.Delivery{BackoffPolicy: "exponential", BackoffDelay: 100, BackoffMax: 1000, RetryAfterMax: -1}
	lin := plan.Delivery{BackoffPolicy: "linear", BackoffDelay: 100, BackoffMax: 250, RetryAfterMax: 500}
	noRA := plan.Delivery{BackoffPolicy: "linear", BackoffDelay: 100, BackoffMax: 1000, RetryAfterMax: 0}
	ms := time.Millisecond
	tests := []struct {
		name       string
		d          plan.Delivery
		attempt    int
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"exponential 1", exp, 1, 500, "", 100 * ms},
		{"exponential 2", exp, 2, 500, "", 200 * ms},
		{"exponential 4", exp, 4, 500, "", 800 * ms},
		{"exponential capped", exp, 10, 500, "", 1000 * ms},
		{"exponential huge attempt", exp, 1000, 500, "", 1000 * ms},
		{"linear 2", lin, 2, 0, "", 200 * ms},
		{"linear capped", lin, 5, 0, "", 250 * ms},
		{"Retry-After seconds on 429 capped by retryAfterMax", lin, 1, 429, "3", 500 * ms},
		{"Retry-After on 503", exp, 1, 503, "1", 1000 * ms},
		{"Retry-After up to backoffMax by default", exp, 1, 429, "120", 1000 * ms},
		{"Retry-After shorter than backoff", exp, 4, 429, "0", 800 * ms},
		{"Retry-After HTTP-date", exp, 1, 503, now.Add(700 * ms).Add(300 * ms).Format(http.TimeFormat), 1000 * ms},
		{"Retry-After date in the past", exp, 1, 503, now.Add(-time.Hour).Format(http.TimeFormat), 100 * ms},
		{"Retry-After ignored on 500", exp, 1, 500, "1", 100 * ms},
		{"Retry-After garbage", exp, 1, 429, "soon", 100 * ms},
		{"Retry-After ignored with retryAfterMax 0", noRA, 1, 429, "1", 100 * ms},
	}
	for _, tc := range tests {
		if got := retryDelay(tc.d, tc.attempt, tc.status, tc.retryAfter, now); got != tc.want {
			t.Errorf("%s: retryDelay = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRetryBackoff(t *testing.T) {
	exp := plan.Delivery{BackoffPolicy: "exponential", BackoffDelay: 200, BackoffMax: 1000}
	lin := plan.Delivery{BackoffPolicy: "linear", BackoffDelay: 200, BackoffMax: 1000}
	for _, tc := range []struct {
		d       plan.Delivery
		attempt int
		want    time.Duration
	}{
		{exp, 1, 200 * time.Millisecond},
		{exp, 2, 400 * time.Millisecond},
		{exp, 3, 800 * time.Millisecond},
		{exp, 4, time.Second}, // capped
		{exp, 200, time.Second},
		{lin, 1, 200 * time.Millisecond},
		{lin, 3, 600 * time.Millisecond},
		{lin, 9, time.Second},
	} {
		if got := retryBackoff(tc.d, tc.attempt); got != tc.want {
			t.Errorf("%s attempt %d = %v, want %v", tc.d.BackoffPolicy, tc.attempt, got, tc.want)
		}
	}
}
