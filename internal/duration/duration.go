// Package duration parses the durations of Herald's API (v1alpha1.Duration)
// without depending on the API types, so that the dispatcher can parse
// durations clients send.
package duration

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// The same grammar as the CEL rule on v1alpha1.Duration, kept in one place for Go callers.
const (
	isoSeconds  = `[0-9]+(\.[0-9]+)?S`
	isoTime     = `T([0-9]+H([0-9]+M)?(` + isoSeconds + `)?|[0-9]+M(` + isoSeconds + `)?|` + isoSeconds + `)`
	isoDuration = `P([0-9]+D(` + isoTime + `)?|` + isoTime + `)`
	goDuration  = `([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+`
)

var (
	durationRE = regexp.MustCompile(`^(` + isoDuration + `|` + goDuration + `)$`)
	isoPartRE  = regexp.MustCompile(`([0-9]+(?:\.[0-9]+)?)([DHMS])`)
)

// Parse returns the length of s, an ISO-8601 duration of days, hours,
// minutes and seconds or a Go duration. It accepts exactly the strings the
// API server accepts for a v1alpha1.Duration field.
func Parse(s string) (time.Duration, error) {
	if !durationRE.MatchString(s) {
		return 0, fmt.Errorf("invalid duration %q: use ISO-8601 such as PT0.2S or a Go duration such as 200ms", s)
	}
	if s[0] != 'P' {
		return time.ParseDuration(s)
	}
	var total float64
	inTime := false
	rest := s[1:]
	for len(rest) > 0 {
		if rest[0] == 'T' {
			inTime = true
			rest = rest[1:]
			continue
		}
		m := isoPartRE.FindStringSubmatchIndex(rest)
		if m == nil || m[0] != 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		n, err := strconv.ParseFloat(rest[m[2]:m[3]], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: %w", s, err)
		}
		switch unit := rest[m[4]:m[5]]; {
		case unit == "D":
			total += n * float64(24*time.Hour)
		case unit == "H":
			total += n * float64(time.Hour)
		case unit == "M" && inTime:
			total += n * float64(time.Minute)
		case unit == "S":
			total += n * float64(time.Second)
		default:
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		rest = rest[m[1]:]
	}
	if total > float64(1<<63-1) {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return time.Duration(total), nil
}
