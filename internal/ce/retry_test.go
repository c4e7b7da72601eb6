package ce

import (
	"net/http"
	"testing"
	"time"
)

// TestRetryable: the Knative data-plane set, 404 and 409 included.
func TestRetryable(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{
		0: true, 200: false, 202: false, 301: false, 400: false, 401: false, 403: false, 404: true,
		405: false, 408: true, 409: true, 410: false, 413: false, 422: false, 429: true,
		500: true, 502: true, 503: true, 504: true, 599: true, 600: false,
	} {
		if got := Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name        string
		p           BackoffPolicy
		base, limit time.Duration
		attempt     int
		want        time.Duration
	}{
		{"exponential 1", Exponential, 100 * ms, time.Second, 1, 100 * ms},
		{"exponential 0 counts as 1", Exponential, 100 * ms, time.Second, 0, 100 * ms},
		{"exponential 4", Exponential, 100 * ms, time.Second, 4, 800 * ms},
		{"exponential capped", Exponential, 100 * ms, time.Second, 5, time.Second},
		{"exponential huge attempt", Exponential, 200 * ms, 5 * time.Minute, 1000, 5 * time.Minute},
		{"exponential just below overflow", Exponential, 1, 0, 63, 1 << 62},
		{"exponential overflow without cap", Exponential, 200 * ms, 0, 100, time.Duration(1<<63 - 1)},
		{"linear 3", Linear, 100 * ms, time.Second, 3, 300 * ms},
		{"linear capped", Linear, 100 * ms, 250 * ms, 5, 250 * ms},
		{"linear overflow", Linear, time.Hour, time.Minute, 1 << 40, time.Minute},
		{"no base", Exponential, 0, time.Second, 3, 0},
	}
	for _, tc := range tests {
		if got := Backoff(tc.p, tc.base, tc.limit, tc.attempt); got != tc.want {
			t.Errorf("%s: Backoff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"0": 0, "7": 7 * time.Second, " 2 ": 2 * time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		"Fri, 02 Jan 2026 03:04:05 GMT":                   0,
	} {
		got, ok := ParseRetryAfter(in, now)
		if !ok || got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "tomorrow"} {
		if _, ok := ParseRetryAfter(in, now); ok {
			t.Errorf("ParseRetryAfter(%q) accepted", in)
		}
	}
}
