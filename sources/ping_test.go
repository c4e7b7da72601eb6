package sources

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func pingConfig(url string, spec v1alpha1.PingSource) Config {
	return Config{Sink: url, Type: v1alpha1.EventSourceTypePing, Namespace: "ns1", Name: "tick", Ping: &spec}
}

// runPing runs a ping source until the sink accepted n events.
func runPing(t *testing.T, spec v1alpha1.PingSource, ext map[string]string, n int) []received {
	t.Helper()
	s := newSink(t)
	cfg := pingConfig(s.URL, spec)
	cfg.Extensions = ext
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPing(cfg, Options{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "ready", p.Ready)
	eventually(t, fmt.Sprintf("%d ping events", n), func() bool { return len(s.events()) >= n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Ready() {
		t.Error("ready after Run returned")
	}
	return s.events()[:n]
}

func TestPingEverySecond(t *testing.T) {
	t.Parallel()
	got := runPing(t, v1alpha1.PingSource{Schedule: "@every 1s", Data: `{"hello":"world"}`}, map[string]string{"team": "a"}, 2)
	var prev time.Time
	for i, r := range got {
		h := r.Header
		tick, err := time.Parse(time.RFC3339Nano, h.Get("Ce-Time"))
		if err != nil {
			t.Fatalf("event %d: ce-time %q: %v", i, h.Get("Ce-Time"), err)
		}
		if tick.Nanosecond() != 0 || tick.Location() != time.UTC {
			t.Errorf("event %d: time %v is not a whole UTC second", i, tick)
		}
		want := map[string]string{
			"Ce-Specversion": "1.0",
			"Ce-Type":        PingEventType,
			"Ce-Source":      "/apis/eventing.herald.dev/v1alpha1/namespaces/ns1/eventsources/tick",
			"Ce-Id":          fmt.Sprintf("tick-%d", tick.Unix()),
			"Ce-Team":        "a",
			"Content-Type":   "application/json",
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("event %d: %s = %q, want %q", i, k, h.Get(k), v)
			}
		}
		if string(r.Body) != `{"hello":"world"}` {
			t.Errorf("event %d: data %q", i, r.Body)
		}
		if i > 0 && !tick.After(prev) {
			t.Errorf("event %d: tick %v not after %v", i, tick, prev)
		}
		prev = tick
	}
}

func TestPingDataBase64(t *testing.T) {
	t.Parallel()
	got := runPing(t, v1alpha1.PingSource{Schedule: "@every 1s", DataBase64: "AAEC/w==", ContentType: "application/octet-stream"}, nil, 1)
	if string(got[0].Body) != "\x00\x01\x02\xff" || got[0].Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("data %q, content type %q", got[0].Body, got[0].Header.Get("Content-Type"))
	}
}

func TestPingWithoutData(t *testing.T) {
	t.Parallel()
	got := runPing(t, v1alpha1.PingSource{Schedule: "CRON_TZ=Europe/Berlin @every 1s"}, nil, 1)
	if len(got[0].Body) != 0 || got[0].Header.Get("Content-Type") != "" {
		t.Errorf("data %q, content type %q", got[0].Body, got[0].Header.Get("Content-Type"))
	}
}

func TestValidateSchedule(t *testing.T) {
	tests := []struct {
		schedule, timezone string
		wantErr            string // substring; "" means valid
	}{
		{"*/5 * * * *", "", ""},
		{"0 9 * * MON-FRI", "Europe/Berlin", ""},
		{"@hourly", "", ""},
		{"@every 10s", "America/New_York", ""},
		{"CRON_TZ=Asia/Tokyo 0 0 * * *", "", ""},
		{"* * *", "", "expected exactly 5 fields, found 3: [* * *]"},
		{"* * * * * *", "", "expected exactly 5 fields, found 6"},
		{"61 * * * *", "", "end of range (61) above maximum (59): 61"},
		{"@fortnightly", "", "unrecognized descriptor: @fortnightly"},
		{"@every 1x", "", "failed to parse duration @every 1x"},
		{"", "", "schedule is empty"},
		{"@hourly", "Mars/Olympus", `timezone "Mars/Olympus": unknown time zone Mars/Olympus`},
		{"CRON_TZ=Nowhere/Town 0 0 * * *", "", "provided bad location Nowhere/Town"},
		{"CRON_TZ=UTC 0 0 * * *", "UTC", "set one of them"},
	}
	for _, tt := range tests {
		err := ValidateSchedule(tt.schedule, tt.timezone)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateSchedule(%q, %q) = %v", tt.schedule, tt.timezone, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidateSchedule(%q, %q) = %v, want %q", tt.schedule, tt.timezone, err, tt.wantErr)
		}
	}
}

func TestValidatePing(t *testing.T) {
	if err := ValidatePing(&v1alpha1.PingSource{Schedule: "@hourly", DataBase64: "not base64!"}); err == nil || !strings.Contains(err.Error(), "dataBase64") {
		t.Errorf("bad base64: %v", err)
	}
	if err := ValidatePing(&v1alpha1.PingSource{Schedule: "@hourly", Data: "x", DataBase64: "eA=="}); err == nil {
		t.Error("data and dataBase64 both accepted")
	}
	if _, err := NewPing(pingConfig("http://sink", v1alpha1.PingSource{Schedule: "* *"}), Options{}); err == nil || !strings.Contains(err.Error(), "expected exactly 5 fields") {
		t.Errorf("NewPing with a bad schedule: %v", err)
	}
}

func TestScheduleTimes(t *testing.T) {
	at := time.Date(2026, 3, 10, 7, 59, 30, 0, time.UTC)
	tests := []struct {
		schedule, timezone string
		want               time.Time
	}{
		// 09:00 Berlin (UTC+1 in March before DST) is 08:00 UTC.
		{"0 9 * * *", "Europe/Berlin", time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)},
		{"0 9 * * *", "", time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)},
		{"@hourly", "", time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)},
		// @every ticks at multiples of the interval, whatever the start.
		{"@every 10s", "", time.Date(2026, 3, 10, 7, 59, 40, 0, time.UTC)},
		{"@every 1m", "", time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		s, err := parseSchedule(tt.schedule, tt.timezone)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Next(at); !got.Equal(tt.want) {
			t.Errorf("%q in %q: next after %v = %v, want %v", tt.schedule, tt.timezone, at, got, tt.want)
		}
	}
}
