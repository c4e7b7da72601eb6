// Package dispatchercmd is the dispatcher's command: its flags and
// environment, its HTTP servers (ingress, metrics, health), drain and
// shutdown. The binary herald-dispatcher runs it, as the operator's
// dispatcher Deployments do; herald dispatcher runs the same for the
// Deployments of earlier operators. herald-dispatcher links the data path
// only, none of the control plane's libraries, so that a dispatcher Pod's
// memory holds little but its own work.
package dispatchercmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/herald-dev/herald/dispatcher"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/internal/tracing"
)

// Config is the dispatcher's validated configuration.
type Config struct {
	// NATSConfig is how the dispatcher reaches NATS.
	cli.NATSConfig
	// Topics served, as namespace/name; empty serves every plan (or, with
	// Shared, those naming the shared dispatcher).
	Topics []string
	// Shared, as namespace/name, makes this the shared dispatcher of that
	// name: it serves every Topic of the namespace whose plan names it.
	// It excludes Topics.
	Shared string
	// Listen is the ingress address; it also serves /healthz and /readyz.
	Listen string
	// TLSCertFile and TLSKeyFile, both set or both empty, serve the ingress
	// over TLS with this PEM certificate chain and private key, reloaded
	// when the files change. The metrics address stays plain HTTP.
	TLSCertFile string
	TLSKeyFile  string
	// MetricsListen serves /metrics, /healthz and /readyz; empty disables.
	MetricsListen string
	// LogLevel is the lowest level logged.
	LogLevel slog.Level
	// DrainDelay is how long the dispatcher at least keeps serving after
	// SIGTERM, closing each connection after its response, so that Service
	// endpoints stop sending it traffic before its listener closes. It
	// serves on while events keep arriving, up to DrainMax: the Service
	// still routes to a terminating Pod while it has no ready one.
	DrainDelay time.Duration
	DrainMax   time.Duration
	// ShutdownTimeout bounds the graceful shutdown after the drain.
	ShutdownTimeout time.Duration
	// Kubeconfig names the cluster whose ServiceAccount tokens producers
	// present; empty uses the Pod's in-cluster configuration when running
	// in one, else no tokens can be checked.
	Kubeconfig string
	// AuthTokenReview checks every token with the TokenReview API instead
	// of verifying it offline against the API server's keys.
	AuthTokenReview bool
	// AuthCacheSize bounds the verified tokens remembered.
	AuthCacheSize int
}

const usage = `Usage: herald-dispatcher [flags]
       herald dispatcher [flags]

Serves the ingress of Herald Topics (POST /<namespace>/<topic>) and delivers
their events to the Topics' Subscriptions, following the dispatch plans the
control plane publishes in NATS: those of the Topics named in --topics, of
every Topic of a namespace whose plan names the shared dispatcher --shared,
or else of every Topic. Flags default to the environment variables named.

Topics whose publish policy authenticates producers accept a ServiceAccount
token for the Topic's audience in Authorization: Bearer. Tokens are verified
offline against the keys of the API server (--kubeconfig, else the Pod's
own), or with the TokenReview API while the issuer cannot be discovered or
with --auth-token-review; offline verification cannot see that a token's
ServiceAccount was deleted before the token expires, TokenReview can.
Without an API server such Topics answer 503.

Flags:
`

// ParseConfig reads the flags in args, with defaults from getenv,
// and validates them.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	fs := cli.NewFlagSet("dispatcher", usage)
	envOr := cli.EnvDefault(getenv)
	var (
		c        Config
		topics   string
		logFlags logging.Flags
	)
	c.RegisterNATSFlags(fs, getenv)
	fs.StringVar(&topics, "topics", getenv("HERALD_TOPICS"), "Topics to serve as namespace/name, comma-separated, whatever shared dispatcher their plans name; empty serves all unless --shared ($HERALD_TOPICS)")
	fs.StringVar(&c.Shared, "shared", getenv("HERALD_SHARED"), "serve every Topic of namespace NS whose plan names this shared dispatcher NS/NAME; excludes --topics ($HERALD_SHARED)")
	fs.StringVar(&c.Listen, "listen", envOr("HERALD_LISTEN", ":8080"), "ingress address, also serving /healthz and /readyz ($HERALD_LISTEN)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", getenv("HERALD_TLS_CERT_FILE"), "PEM certificate chain to serve the ingress over TLS with, reloaded when it changes; needs --tls-key-file ($HERALD_TLS_CERT_FILE)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", getenv("HERALD_TLS_KEY_FILE"), "PEM private key of --tls-cert-file ($HERALD_TLS_KEY_FILE)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", envOr("HERALD_METRICS_LISTEN", ":9090"), `address of /metrics, /healthz and /readyz; "" disables ($HERALD_METRICS_LISTEN)`)
	logFlags.BindFlags(fs, getenv)
	fs.DurationVar(&c.DrainDelay, "drain-delay", 5*time.Second, "after SIGTERM, how long at least to keep accepting events, closing each connection, before the listener closes")
	fs.DurationVar(&c.DrainMax, "drain-max", 20*time.Second, "after SIGTERM, how long at most to keep accepting events while they still arrive")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "bound on the graceful shutdown after the drain")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", getenv("KUBECONFIG"), "kubeconfig of the cluster whose ServiceAccount tokens producers present; empty uses the Pod's in-cluster configuration ($KUBECONFIG)")
	fs.BoolVar(&c.AuthTokenReview, "auth-token-review", getenv("HERALD_AUTH_TOKEN_REVIEW") == "true", "check producers' tokens with the TokenReview API (seeing deleted ServiceAccounts at once) instead of offline ($HERALD_AUTH_TOKEN_REVIEW)")
	fs.IntVar(&c.AuthCacheSize, "auth-cache-size", auth.DefaultCacheSize, "verified producer tokens remembered until they expire")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.Topics = cli.SplitList(topics)
	var err error
	if c.LogLevel, err = logFlags.Level(); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	errs := c.ValidateNATS()
	for _, t := range c.Topics {
		ns, name, ok := strings.Cut(t, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			errs = append(errs, fmt.Errorf("--topics: %q is not namespace/name", t))
		}
	}
	if c.Shared != "" {
		ns, name, ok := strings.Cut(c.Shared, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") || strings.ContainsAny(c.Shared, ". *>") {
			errs = append(errs, fmt.Errorf("--shared: %q is not namespace/name", c.Shared))
		}
		if len(c.Topics) > 0 {
			errs = append(errs, errors.New("--shared and --topics exclude each other"))
		}
	}
	for flagName, addr := range map[string]string{"--listen": c.Listen, "--metrics-listen": c.MetricsListen} {
		if addr == "" && flagName == "--metrics-listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", flagName, addr, err))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	if c.Listen != "" && c.Listen == c.MetricsListen {
		errs = append(errs, errors.New("--listen and --metrics-listen must differ"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	if c.AuthCacheSize <= 0 {
		errs = append(errs, errors.New("--auth-cache-size must be positive"))
	}
	if c.DrainDelay < 0 || c.DrainMax < c.DrainDelay {
		errs = append(errs, errors.New("--drain-delay must not be negative nor above --drain-max"))
	}
	return errors.Join(errs...)
}

// natsOptions are the dispatcher's NATS connection options; while
// NATS is unreachable, readiness reports the outage.
func (c Config) natsOptions(log *slog.Logger) []nats.Option {
	return c.NATSOptions("herald-dispatcher",
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	)
}

// healthHandler answers /healthz (the process serves) and /readyz (NATS
// connected and plans loaded). Readiness stays true while draining:
// EndpointSlices mark a terminating Pod not ready anyway, and kube-proxy
// keeps sending a Service's traffic to terminating Pods that still serve
// when it has no ready one, as during the restart of a single replica.
func healthHandler(d *dispatcher.Dispatcher) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// ingressHandler serves GET /healthz and /readyz, and everything else as
// the ingress, whose requests dr watches.
func ingressHandler(d *dispatcher.Dispatcher, dr *drain) http.Handler {
	health := healthHandler(d)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz") {
			health.ServeHTTP(w, r)
			return
		}
		dr.request(w)
		d.ServeHTTP(w, r)
	})
}

// drainQuiet is how long without an ingress request ends a drain after its
// minimum.
const drainQuiet = time.Second

// drain is the ingress's drain at shutdown: it serves for at least a
// minimum, then while requests keep coming, up to a maximum. Meanwhile every
// response closes its connection, so that clients holding keep-alive
// connections reconnect through the Service, to a Pod that stays once one
// is ready.
type drain struct {
	active atomic.Bool
	last   atomic.Int64 // time of the last ingress request, UnixNano
}

// request notes an ingress request, and closes its connection while draining.
func (dr *drain) request(w http.ResponseWriter) {
	dr.last.Store(time.Now().UnixNano())
	if dr.active.Load() {
		w.Header().Set("Connection", "close")
	}
}

// run starts the drain and returns a channel closed when it is over: at
// least minimum after now, then once no request came for drainQuiet, at
// the latest maximum after now.
func (dr *drain) run(minimum, maximum time.Duration) <-chan struct{} {
	dr.active.Store(true)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		time.Sleep(minimum)
		for {
			now := time.Now()
			quietFor := now.Sub(time.Unix(0, dr.last.Load()))
			if quietFor >= drainQuiet || now.Sub(start) >= maximum {
				return
			}
			time.Sleep(min(drainQuiet-quietFor, maximum-now.Sub(start)))
		}
	}()
	return done
}

// Run runs the dispatcher with the flags in args (the command line after
// the command's name) and the process's environment until ctx is done,
// then drains and shuts down. -h prints the usage and returns nil.
func Run(ctx context.Context, args []string) error {
	cli.TuneGC(os.Getenv, cli.CgroupMemoryLimit)
	cfg, err := ParseConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, logging.JSON, cfg.LogLevel)
	var certs *keyPairReloader
	if cfg.TLSCertFile != "" {
		if certs, err = newKeyPairReloader(cfg.TLSCertFile, cfg.TLSKeyFile, ingressCertCheckInterval, log); err != nil {
			return err
		}
	}

	nc, err := nats.Connect(cfg.NATSURL, cfg.natsOptions(log)...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	verifier, err := cfg.verifier(os.Getenv)
	if err != nil && cfg.Kubeconfig != "" {
		return err
	}
	opts := dispatcher.Options{Topics: cfg.Topics, Shared: cfg.Shared, Logger: log, Registry: reg}
	switch {
	case err != nil:
		// A Pod without its ServiceAccount token still serves open Topics.
		log.Warn("cannot check producers' tokens: Topics authenticating producers answer 503", "error", err)
	case verifier != nil:
		opts.Verifier = verifier
		go logDiscovery(ctx, log, verifier)
	default:
		log.Warn("no Kubernetes API server to check producers' tokens with: Topics authenticating producers answer 503")
	}
	tokens, err := dispatcherTokens(os.Getenv, log)
	if err != nil {
		return err
	}
	opts.Tokens = tokens
	tp, err := tracing.FromEnv(ctx, os.Getenv, "herald-dispatcher", os.Stderr)
	if err != nil {
		return err
	}
	if tp != nil {
		opts.TracerProvider = tp
		defer tp.Close(func(err error) { log.Warn("flushing spans", "error", err) })
		log.Info("tracing on", "exporter", os.Getenv(tracing.EnvExporter))
	}
	d, err := dispatcher.New(nc, opts)
	if err != nil {
		return err
	}

	var dr drain
	ingress := &http.Server{Addr: cfg.Listen, Handler: ingressHandler(d, &dr), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if certs != nil {
		ingress.TLSConfig = ingressTLSConfig(certs)
		// Failed handshakes, logged by the server, are the clients' view of
		// the certificate.
		ingress.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	var metrics *http.Server
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("/", healthHandler(d))
		metrics = &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	servers := []*http.Server{ingress}
	if metrics != nil {
		servers = append(servers, metrics)
	}
	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.Addr, err)
		}
		go func() {
			serve := s.Serve
			if s.TLSConfig != nil {
				serve = func(ln net.Listener) error { return s.ServeTLS(ln, "", "") }
			}
			if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("serve %s: %w", s.Addr, err)
			}
		}()
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	log.Info("dispatcher started", "listen", cfg.Listen, "tls", certs != nil, "metrics", cfg.MetricsListen, "topics", cfg.Topics, "shared", cfg.Shared, "nats", cfg.NATSURL)

	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down; draining the ingress first", "drainDelay", cfg.DrainDelay.String(), "drainMax", cfg.DrainMax.String())
		select {
		case <-dr.run(cfg.DrainDelay, cfg.DrainMax):
		case failed = <-serveErr:
		case failed = <-runDone:
			runDone <- nil // shutdownDispatcher waits for it too
		}
	case failed = <-serveErr:
		log.Error("server failed; shutting down", "error", failed)
	case failed = <-runDone:
		runDone <- nil // shutdownDispatcher waits for it too
		log.Error("dispatcher stopped unexpectedly", "error", failed)
	}
	return errors.Join(failed, shutdownDispatcher(cfg.ShutdownTimeout, log, ingress, metrics, stopRun, runDone, nc))
}

// shutdownDispatcher stops accepting events (finishing accepted requests),
// stops pulling and waits for in-flight deliveries, drains the NATS
// connection, then stops the metrics server, all within timeout.
func shutdownDispatcher(timeout time.Duration, log *slog.Logger, ingress, metrics *http.Server,
	stopRun context.CancelFunc, runDone <-chan error, nc *nats.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if err := ingress.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("ingress shutdown: %w", err))
	}
	stopRun()
	select {
	case err := <-runDone:
		if err != nil {
			errs = append(errs, err)
		}
	case <-ctx.Done():
		errs = append(errs, errors.New("in-flight deliveries did not finish in time; JetStream redelivers them"))
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err == nil {
		select {
		case <-closed:
		case <-ctx.Done():
			errs = append(errs, errors.New("NATS drain did not finish in time"))
		}
	}
	if metrics != nil {
		if err := metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics shutdown: %w", err))
		}
	}
	if len(errs) == 0 {
		log.Info("stopped")
	}
	return errors.Join(errs...)
}

// verifier returns the verifier of producers' tokens: for the cluster of
// c.Kubeconfig, else for the Pod's own cluster when running in one; nil
// outside a cluster.
func (c Config) verifier(getenv func(string) string) (*auth.KubernetesVerifier, error) {
	var (
		rc  *rest.Config
		err error
	)
	switch {
	case c.Kubeconfig != "":
		if rc, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
	case getenv("KUBERNETES_SERVICE_HOST") != "":
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster configuration to check producers' tokens: %w", err)
		}
	default:
		return nil, nil
	}
	return auth.NewKubernetesVerifier(rc, auth.KubernetesOptions{TokenReview: c.AuthTokenReview, CacheSize: c.AuthCacheSize})
}

// logDiscovery discovers the service-account issuer and says how tokens
// will be checked.
func logDiscovery(ctx context.Context, log *slog.Logger, v *auth.KubernetesVerifier) {
	if err := v.Discover(ctx); err != nil {
		log.Info("checking producers' tokens with the TokenReview API", "why", err.Error())
		return
	}
	log.Info("checking producers' tokens offline against the API server's keys")
}

// dispatcherTokens is the source of the tokens the dispatcher presents to
// destinations with an audience: its ServiceAccount's, minted with the
// TokenRequest API. In a Pod failing to set it up is an error; elsewhere
// the dispatcher runs without one and presents no tokens.
func dispatcherTokens(getenv func(string) string, log *slog.Logger) (auth.TokenSource, error) {
	ts, err := auth.NewPodTokenSource(getenv)
	switch {
	case err == nil:
		return ts, nil
	case getenv("KUBERNETES_SERVICE_HOST") != "":
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	log.Warn("deliveries carry no bearer tokens: no ServiceAccount to mint them for", "error", err)
	return nil, nil
}
