package sources

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-dev/herald/internal/auth"
)

// Runner is a running source: Run sends events until ctx ends, then
// finishes the events in flight (within ShutdownGrace) and returns nil; it
// returns an error only when the source cannot run.
type Runner interface {
	Run(ctx context.Context) error
}

// ReadyChecker is a Runner that knows when it is ready: /readyz answers
// 200 once Ready returns true.
type ReadyChecker interface {
	Ready() bool
}

// ShutdownGrace is how long a stopping source keeps sending the events it
// already has in flight.
const ShutdownGrace = 10 * time.Second

// Options are the dependencies of a source. Zero fields take defaults.
type Options struct {
	// Log receives the source's logs; nil means slog.Default().
	Log *slog.Logger
	// Registerer receives the source's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Client sends events; nil means a client of the sender's own.
	Client *http.Client
	// Retry overrides the retry policy; MaxAttempts defaults to the Config's.
	Retry RetryPolicy
	// Tokens supplies the bearer token presented to a sink with an
	// audience (Config.Audience); nil presents none.
	Tokens auth.TokenSource
}

func (o Options) logger() *slog.Logger {
	if o.Log == nil {
		return slog.Default()
	}
	return o.Log
}

// NewSenderFor returns the Sender of a source configured by cfg.
func NewSenderFor(cfg Config, opts Options) (*Sender, error) {
	m, err := NewMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	retry := opts.Retry
	if retry.MaxAttempts == 0 {
		retry.MaxAttempts = cfg.MaxAttempts
	}
	return NewSender(SenderConfig{
		Sink:       cfg.Sink,
		Audience:   cfg.Audience,
		Tokens:     opts.Tokens,
		As:         auth.Sender{Namespace: cfg.Namespace, Name: cfg.ServiceAccount},
		Extensions: cfg.Extensions,
		Type:       cfg.Type,
		Retry:      retry,
		Client:     opts.Client,
		Metrics:    m,
		Log:        opts.logger().With("eventsource", cfg.Namespace+"/"+cfg.Name, "type", string(cfg.Type)),
	})
}

// DrainContext returns a context that ends grace after ctx ends, so that
// work in flight at shutdown can finish. cancel releases it.
func DrainContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(dctx, func() { t.Stop() })
	})
	return dctx, func() { stop(); cancel() }
}
