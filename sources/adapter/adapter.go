// Package adapter runs one event source as `herald adapter`: the source,
// an HTTP server with /healthz and /readyz (and the webhook's requests),
// and a metrics server with /metrics, /healthz and /readyz.
package adapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/sources"
	"github.com/herald-dev/herald/sources/apiserver"
)

// Run runs the source cfg describes until ctx ends, then shuts down
// gracefully. It returns an error when the source cannot start or fails.
func Run(ctx context.Context, cfg sources.Config, log *slog.Logger) error {
	httpLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	metricsLn, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("metrics listen: %w", err)
	}
	var tokens auth.TokenSource
	if cfg.Audience != "" {
		// The sink expects a token: the Pod's own ServiceAccount's.
		if tokens, err = auth.NewPodTokenSource(os.Getenv); err != nil {
			httpLn.Close()
			metricsLn.Close()
			return fmt.Errorf("sink audience %s: %w", cfg.Audience, err)
		}
	}
	return serve(ctx, cfg, log, tokens, httpLn, metricsLn)
}

// serve is Run on listeners the caller opened, presenting tokens of tokens
// (nil: none); it closes the listeners.
func serve(ctx context.Context, cfg sources.Config, log *slog.Logger, tokens auth.TokenSource, httpLn, metricsLn net.Listener) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := sources.Options{Log: log, Registerer: reg, Tokens: tokens}

	runner, webhook, err := newRunner(cfg, opts)
	if err != nil {
		httpLn.Close()
		metricsLn.Close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(what string, err error) {
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			return
		}
		mu.Lock()
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		mu.Unlock()
		cancel()
	}

	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	sources.HandleHealth(metricsMux, runner)
	wg.Go(func() {
		fail("metrics server", sources.ServeUntil(ctx, newServer(metricsMux), metricsLn))
	})

	if webhook != nil {
		wg.Go(func() { fail("webhook", webhook.Serve(ctx, httpLn)) })
	} else {
		healthMux := http.NewServeMux()
		sources.HandleHealth(healthMux, runner)
		wg.Go(func() { fail("http server", sources.ServeUntil(ctx, newServer(healthMux), httpLn)) })
		wg.Go(func() {
			fail(string(cfg.Type)+" source", runner.Run(ctx))
			// A source that stops on its own stops the adapter.
			cancel()
		})
	}
	log.Info("adapter started", "eventsource", cfg.Namespace+"/"+cfg.Name, "type", string(cfg.Type), "sink", cfg.Sink, "audience", cfg.Audience,
		"listen", httpLn.Addr().String(), "metrics", metricsLn.Addr().String())
	wg.Wait()
	log.Info("adapter stopped")
	return errors.Join(errs...)
}

// newRunner builds the source of cfg; webhook is set for a webhook source,
// which serves the HTTP listener itself.
func newRunner(cfg sources.Config, opts sources.Options) (runner sources.Runner, webhook *sources.Webhook, err error) {
	switch cfg.Type {
	case v1alpha1.EventSourceTypePing:
		runner, err = sources.NewPing(cfg, opts)
	case v1alpha1.EventSourceTypeWebhook:
		webhook, err = sources.NewWebhook(cfg, opts)
		runner = webhook
	case v1alpha1.EventSourceTypeAPIServer:
		// In a Pod: the ServiceAccount's token; elsewhere $KUBECONFIG or ~/.kube/config.
		rc, cerr := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
		if cerr != nil {
			return nil, nil, fmt.Errorf("kubernetes client config: %w", cerr)
		}
		rc.UserAgent = "herald-adapter"
		runner, err = apiserver.New(cfg, rc, opts)
	default:
		err = fmt.Errorf("source type %q has no adapter", cfg.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	return runner, webhook, nil
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}
