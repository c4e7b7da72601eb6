package v1alpha1

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Duration is a length of time written either as an ISO-8601 duration, the
// format Knative's delivery spec uses (for example PT0.2S, PT30S, PT1M, P1D,
// P1DT12H), or as a Go duration (for example 200ms, 30s, 1m30s). ISO-8601
// durations take days (D), hours (H), minutes (M) and seconds (S, with a
// fraction); years, months and weeks are not accepted because their length
// varies.
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^(P([0-9]+D(T([0-9]+H([0-9]+M)?([0-9]+([.][0-9]+)?S)?|[0-9]+M([0-9]+([.][0-9]+)?S)?|[0-9]+([.][0-9]+)?S))?|T([0-9]+H([0-9]+M)?([0-9]+([.][0-9]+)?S)?|[0-9]+M([0-9]+([.][0-9]+)?S)?|[0-9]+([.][0-9]+)?S))|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be an ISO-8601 duration such as PT0.2S, PT30S or P1D, or a Go duration such as 200ms or 1m30s"
type Duration string

// The same grammar as the CEL rule on Duration, kept in one place for Go callers.
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

// Parse returns the length of d. It accepts exactly the strings the API server
// accepts for a Duration field.
func (d Duration) Parse() (time.Duration, error) {
	s := string(d)
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

// DurationOrDefault parses d when set and returns def otherwise.
func DurationOrDefault(d *Duration, def time.Duration) (time.Duration, error) {
	if d == nil || *d == "" {
		return def, nil
	}
	return d.Parse()
}
