package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// catalogStatus is status.eventTypes and status.eventTypeCount of a Topic
// whose catalog entries, the latest seen first, are entries: at most
// v1alpha1.MaxObservedEventTypes of them, times to the second as the
// status keeps them.
func catalogStatus(entries []plan.CatalogEntry) ([]v1alpha1.ObservedEventType, int32) {
	n := min(len(entries), v1alpha1.MaxObservedEventTypes)
	if n == 0 {
		return nil, 0
	}
	out := make([]v1alpha1.ObservedEventType, n)
	for i, e := range entries[:n] {
		out[i] = v1alpha1.ObservedEventType{
			Type:            e.Type,
			SourcePattern:   e.SourcePattern,
			FirstSeen:       metav1.NewTime(e.FirstSeen.Truncate(1e9)),
			LastSeen:        metav1.NewTime(e.LastSeen.Truncate(1e9)),
			Count:           e.Count,
			DataContentType: e.DataContentType,
		}
	}
	return out, int32(len(entries))
}

// catalogEqual reports whether t's status shows entries.
func catalogEqual(t *v1alpha1.Topic, entries []plan.CatalogEntry) bool {
	want, n := catalogStatus(entries)
	have := t.Status.EventTypes
	if n != t.Status.EventTypeCount || len(want) != len(have) {
		return false
	}
	for i := range want {
		w, h := want[i], have[i]
		if w.Type != h.Type || w.Count != h.Count || w.SourcePattern != h.SourcePattern || w.DataContentType != h.DataContentType ||
			w.FirstSeen.Unix() != h.FirstSeen.Unix() || w.LastSeen.Unix() != h.LastSeen.Unix() {
			return false
		}
	}
	return true
}
