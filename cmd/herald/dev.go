package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-dev/herald/devmode"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/internal/tracing"
)

func init() {
	commands["dev"] = runDev
}

// stringList is a flag that may repeat.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

const devUsage = `Usage: herald dev -f DIR|FILE [-f ...] [flags]
       herald dev token [namespace/]serviceaccount (--topic [namespace/]name | --audience A) [--ttl D]

Runs Herald on this machine without a cluster: an embedded NATS JetStream
server, the Topics, Subscriptions and EventSources of the manifests (reloaded
when the files change), ingress at http://<listen>/<namespace>/<topic>, and a
display sink that prints the events it receives. Ping and webhook
EventSources run in-process, webhooks at
http://<webhook-listen>/<namespace>/<name>; v1 Secrets in the manifests hold
their signature keys, v1 ConfigMaps the Topics' contract schemas (schemaFrom).
apiServer and container sources need a cluster.

With --auth, producers authenticate as in a cluster: tokens of a local
issuer whose key lives in the data directory, printed by herald dev token.

Flags:
`

// devOptions are herald dev's flags that are not the runtime's.
type devOptions struct {
	level slog.Level
	// auth turns producer authentication on with the data directory's
	// local issuer.
	auth bool
	// pprofListen serves net/http/pprof; empty (the default) disables it.
	pprofListen string
	// metricsListen serves the dispatcher's Prometheus metrics at
	// /metrics; empty (the default) disables it.
	metricsListen string
	// otel records OpenTelemetry spans.
	otel bool
}

// parseDevFlags turns herald dev's command line into a devmode.Config.
func parseDevFlags(args []string, stderr io.Writer) (devmode.Config, devOptions, error) {
	fs := flag.NewFlagSet("herald dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files stringList
	fs.Var(&files, "f", "manifest file or directory (*.yaml, *.yml, *.json); may repeat")
	fs.Var(&files, "filename", "same as -f")
	dataDir := fs.String("data-dir", ".herald", "directory holding the events (kept across restarts) and herald dev's state")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "host:port of the embedded NATS server for clients such as the nats CLI; random (or -1) picks a free port")
	listen := fs.String("listen", "127.0.0.1:8080", "host:port of the ingress")
	displayListen := fs.String("display-listen", "127.0.0.1:8081", "host:port of the built-in display sink, which prints events to stdout; empty disables it")
	webhookListen := fs.String("webhook-listen", "127.0.0.1:8082", "host:port serving the webhook EventSources at /<namespace>/<name>; empty disables them")
	var logFlags logging.Flags
	logFlags.BindFlags(fs, nil)
	metricsListen := fs.String("metrics-listen", "", "host:port serving the data plane's Prometheus metrics at /metrics, as a dispatcher's metrics port does; empty (the default) disables it")
	pprofListen := fs.String("pprof-listen", "", "host:port serving Go's profiler at /debug/pprof/; empty (the default) disables it")
	otelOn := fs.Bool("otel", false, "record OpenTelemetry spans of the ingress, delivery attempts, replies and dead letters: "+
		"printed to stderr, or exported as the OTEL_* environment says (OTEL_TRACES_EXPORTER=otlp and OTEL_EXPORTER_OTLP_ENDPOINT for a local collector)")
	authOn := fs.Bool("auth", false, "authenticate producers with tokens of a local issuer kept in the data directory (see herald dev token)")
	natsInProcess := fs.Bool("nats-in-process", true, "connect the dispatcher to the embedded NATS server in-process; false connects over loopback TCP, as a deployed dispatcher does")
	fs.Usage = func() {
		fmt.Fprint(stderr, devUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return devmode.Config{}, devOptions{}, err
	}
	if fs.NArg() > 0 {
		return devmode.Config{}, devOptions{}, fmt.Errorf("unexpected argument %q: name manifests with -f", fs.Arg(0))
	}
	if len(files) == 0 {
		fs.Usage()
		return devmode.Config{}, devOptions{}, errors.New("no manifests: give -f DIR or -f FILE")
	}
	level, err := logFlags.Level()
	if err != nil {
		return devmode.Config{}, devOptions{}, err
	}
	host, port, err := parseNATSListen(*natsListen)
	if err != nil {
		return devmode.Config{}, devOptions{}, err
	}
	return devmode.Config{
		Paths:         files,
		DataDir:       *dataDir,
		NATSHost:      host,
		NATSPort:      port,
		Listen:        *listen,
		DisplayListen: *displayListen,
		WebhookListen: *webhookListen,
		NATSOverTCP:   !*natsInProcess,
	}, devOptions{level: level, pprofListen: *pprofListen, metricsListen: *metricsListen, auth: *authOn, otel: *otelOn}, nil
}

// parseNATSListen reads --nats-listen: host:port, or random / -1 for a free
// port on 127.0.0.1.
func parseNATSListen(s string) (string, int, error) {
	switch s {
	case "random", "-1", "":
		return "127.0.0.1", -1, nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("--nats-listen %q: want host:port, or random", s)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("--nats-listen %q: bad port", s)
	}
	if port == 0 {
		port = -1
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func runDev(ctx context.Context, args []string) error {
	cli.TuneGC(os.Getenv, cli.CgroupMemoryLimit)
	go func() {
		// ctx ends on the first Ctrl-C or SIGTERM; a second one does not
		// wait for the deliveries under way.
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Fprintln(os.Stderr, "herald dev: second signal, exiting at once")
		os.Exit(130)
	}()
	return devMain(ctx, args, os.Stdout, os.Stderr)
}

// devMain runs herald dev until ctx is done: displayed events go to stdout,
// the banner and logs to stderr.
func devMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		err := devToken(args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, o, err := parseDevFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Log = logging.New(stderr, logging.Text, o.level)
	if o.pprofListen != "" {
		ln, err := net.Listen("tcp", o.pprofListen)
		if err != nil {
			return fmt.Errorf("--pprof-listen: %w", err)
		}
		srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		cfg.Log.Info("serving the profiler", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	}
	if o.metricsListen != "" {
		ln, err := net.Listen("tcp", o.metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		reg := prometheus.NewRegistry()
		cfg.Registry = reg
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		cfg.Log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	if o.auth {
		iss, err := devIssuerFor(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.Verifier = iss.Verifier()
		cfg.Tokens = iss.TokenSource()
		fmt.Fprint(stderr, devAuthBanner(cfg.DataDir))
	}
	if o.otel {
		tp, err := tracing.FromEnv(ctx, func(k string) string {
			if v := os.Getenv(k); v != "" || k != tracing.EnvExporter {
				return v
			}
			return "console"
		}, "herald-dev", stderr)
		if err != nil {
			return err
		}
		if tp != nil {
			cfg.TracerProvider = tp
			defer tp.Close(func(err error) { cfg.Log.Warn("flushing spans", "error", err) })
		}
	}
	cfg.Banner = stderr
	cfg.DisplayOut = stdout
	rt, err := devmode.New(cfg)
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

// pprofMux serves net/http/pprof without registering it on
// http.DefaultServeMux.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
