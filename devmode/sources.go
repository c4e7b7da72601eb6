package devmode

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// ResolvedSource is an EventSource with its sink resolved to a URI.
type ResolvedSource struct {
	Source  *v1alpha1.EventSource
	SinkURI string
}

// SourceRunner runs EventSources inside herald dev. The runtime calls Sync
// after every load with every valid EventSource whose sink resolved, and
// Stop once at shutdown, before the dispatcher stops; never concurrently.
// A runner starts, restarts and stops its sources to match, and reports
// sources it cannot run through its own logging.
type SourceRunner interface {
	Sync(ctx context.Context, want []ResolvedSource)
	Stop()
}

// LogSources is the SourceRunner of herald dev until the source adapters
// exist: it runs nothing and logs, once per new or changed EventSource, that
// its type is not run yet.
type LogSources struct {
	Log  *slog.Logger
	seen map[string]string
}

// Sync logs every EventSource that is new or changed since the last call.
func (l *LogSources) Sync(_ context.Context, want []ResolvedSource) {
	next := map[string]string{}
	for _, rs := range want {
		key := rs.Source.Namespace + "/" + rs.Source.Name
		spec, _ := json.Marshal(rs.Source.Spec)
		next[key] = string(spec) + rs.SinkURI
		if l.seen[key] == next[key] {
			continue
		}
		l.Log.Info("eventsource " + key + ": type " + string(rs.Source.Spec.Type()) + " is not run by herald dev yet")
	}
	l.seen = next
}

// Stop does nothing: no source runs.
func (l *LogSources) Stop() {}
