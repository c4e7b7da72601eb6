package v1alpha1_test

import (
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestDurationParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"PT0.2S", 200 * time.Millisecond, true},
		{"PT30S", 30 * time.Second, true},
		{"PT1M", time.Minute, true},
		{"PT1H30M", 90 * time.Minute, true},
		{"P1D", 24 * time.Hour, true},
		{"P1DT12H", 36 * time.Hour, true},
		{"PT1H2M3.5S", time.Hour + 2*time.Minute + 3500*time.Millisecond, true},
		{"200ms", 200 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{"0s", 0, true},
		{"P", 0, false},
		{"PT", 0, false},
		{"P1DT", 0, false},
		{"P1M", 0, false}, // months vary in length
		{"P1W", 0, false},
		{"PT1S1M", 0, false},
		{"1", 0, false},
		{"-1s", 0, false},
		{"", 0, false},
		{"1 s", 0, false},
	} {
		got, err := v1alpha1.Duration(tc.in).Parse()
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
