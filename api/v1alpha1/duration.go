package v1alpha1

import (
	"time"

	"github.com/herald-dev/herald/internal/duration"
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

// Parse returns the length of d. It accepts exactly the strings the API server
// accepts for a Duration field.
func (d Duration) Parse() (time.Duration, error) { return duration.Parse(string(d)) }

// DurationOrDefault parses d when set and returns def otherwise.
func DurationOrDefault(d *Duration, def time.Duration) (time.Duration, error) {
	if d == nil || *d == "" {
		return def, nil
	}
	return d.Parse()
}
