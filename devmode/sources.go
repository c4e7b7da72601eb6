package devmode

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/sources"
)

// ResolvedSource is an EventSource herald dev runs, with its sink resolved
// to a URI.
type ResolvedSource struct {
	Source  *v1alpha1.EventSource
	SinkURI string
	// SinkAudience is the audience of the token the source presents to
	// SinkURI; empty sends none.
	SinkAudience string
	Origin       Origin
	// WebhookSecret is the HMAC key of a webhook with a signature, read
	// from a Secret of the manifests. It is never printed.
	WebhookSecret []byte
}

// Key is the EventSource's namespace/name.
func (rs *ResolvedSource) Key() string { return rs.Source.Namespace + "/" + rs.Source.Name }

// SourceRunner runs EventSources inside herald dev. The runtime calls Sync
// after every load with every ping and webhook EventSource whose sink (and
// signature key) resolved, and Stop once at shutdown, before the ingress and
// the dispatcher stop; never concurrently. Handler may be called at any time.
type SourceRunner interface {
	// Sync starts, restarts and stops sources to run exactly want. It
	// returns, keyed namespace/name, the sources it could not start; they
	// do not run.
	Sync(ctx context.Context, want []ResolvedSource) map[string]error
	// Handler serves the webhooks at sources.WebhookPath(namespace, name);
	// nil when the runner serves none.
	Handler() http.Handler
	// Stop stops every source and waits for them.
	Stop()
}

// GroupSources is herald dev's SourceRunner: ping and webhook sources run
// in-process in a sources.Group, exactly as the adapter runs them in a
// cluster, sending to the local ingress (or any uri).
type GroupSources struct {
	g *sources.Group
}

var _ SourceRunner = (*GroupSources)(nil)

// NewGroupSources returns a GroupSources whose sources log to log (nil
// discards) and send with client (nil: the sender's own), presenting to a
// sink with an audience a token of tokens (nil: none) minted for the
// ServiceAccount the operator's adapter would run as
// (sources.AdapterServiceAccount).
func NewGroupSources(log *slog.Logger, client *http.Client, tokens auth.TokenSource) *GroupSources {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &GroupSources{g: sources.NewGroup(sources.Options{Log: log, Client: client, Tokens: tokens})}
}

// Sync implements SourceRunner.
func (s *GroupSources) Sync(ctx context.Context, want []ResolvedSource) map[string]error {
	errs := map[string]error{}
	cfgs := make([]sources.Config, 0, len(want))
	for _, rs := range want {
		cfg, err := sources.ConfigFor(rs.Source, rs.SinkURI, rs.SinkAudience, rs.WebhookSecret)
		if err != nil {
			errs[rs.Key()] = err
			continue
		}
		cfgs = append(cfgs, cfg)
	}
	for k, err := range s.g.Sync(ctx, cfgs) {
		errs[k] = err
	}
	return errs
}

// Handler implements SourceRunner.
func (s *GroupSources) Handler() http.Handler { return s.g.Handler() }

// Running lists the namespace/name of every running source, sorted.
func (s *GroupSources) Running() []string { return s.g.Running() }

// Stop implements SourceRunner.
func (s *GroupSources) Stop() { s.g.Stop() }
