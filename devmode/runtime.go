package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/dispatcher"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/natsserver"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// Config configures a Runtime.
type Config struct {
	// Paths are manifest files or directories. Required.
	Paths []string
	// DataDir holds JetStream's data and herald dev's state. Required.
	DataDir string
	// NATSHost and NATSPort are where the embedded NATS server listens for
	// clients such as the nats CLI; NATSPort -1 picks a free port.
	NATSHost string
	NATSPort int
	// Listen is the ingress address, host:port (port 0 picks a free one). Required.
	Listen string
	// DisplayListen is the built-in display sink's address; empty disables it.
	DisplayListen string
	// WebhookListen is the address serving the webhook EventSources at
	// /<namespace>/<name>; empty disables it, and webhook EventSources are
	// not run.
	WebhookListen string
	// Debounce is the quiet time before a change of the manifests is
	// loaded; zero means DefaultDebounce.
	Debounce time.Duration
	// Log receives herald dev's and the dispatcher's logs. Nil discards them.
	Log *slog.Logger
	// Banner receives the startup banner. Nil discards it.
	Banner io.Writer
	// DisplayOut receives the events the display sink prints. Nil discards them.
	DisplayOut io.Writer
	// Sources runs EventSources. Nil means a GroupSources, which runs ping
	// and webhook sources in-process.
	Sources SourceRunner
	// HTTPClient delivers events; nil means the dispatcher's default. The
	// sources of the default runner send with their own client.
	HTTPClient *http.Client
	// NATSOverTCP connects the dispatcher to the embedded server over
	// loopback TCP, as a deployed dispatcher connects, instead of
	// in-process.
	NATSOverTCP bool
	// TracerProvider, when set, records the dispatcher's spans
	// (dispatcher.Options.TracerProvider).
	TracerProvider trace.TracerProvider
	// Registry, when set, receives the dispatcher's Prometheus metrics
	// (dispatcher.Options.Registry).
	Registry prometheus.Registerer
	// Verifier, when set, turns authentication on: Topics get the publish
	// policy the operator would compile with DefaultPublishMode (or their
	// own spec.publishers), and the ingress checks producers' tokens with
	// it. When nil, herald dev is open: every Topic accepts every request.
	Verifier auth.Verifier
	// DefaultPublishMode is the publish policy of Topics without
	// publishers while Verifier is set; empty means
	// plan.PublishAllowSameNamespace, the operator's default.
	DefaultPublishMode plan.PublishMode
	// Tokens supplies the tokens herald dev's own senders (dispatcher
	// deliveries, replies, dead letters and EventSources) present to
	// destinations with an audience; nil sends none.
	Tokens auth.TokenSource
}

// Runtime is herald dev: an embedded NATS JetStream server, the plans of the
// manifests applied to it and kept in step with the files, the dispatcher
// serving every Topic, and the display sink.
//
// Ping and webhook EventSources run in-process (see SourceRunner), webhooks
// served on their own listener; v1 Secrets in the manifests provide the
// webhooks' signature keys.
//
// The manifests are the desired state, as objects applied with kubectl are
// for the operator, with two differences. A file or object with errors is
// reported and its last good version keeps running, as the API server keeps
// the old object when an apply is refused. And a Topic is deleted, with its
// stream and events, only when herald dev created it (it records each Topic
// it applied, and the file that declared it, in herald-dev-state.json in the
// data directory) and that file is among the paths given, was read without
// errors and no longer declares it. Topics of other manifests sharing the
// data directory are served but never deleted.
type Runtime struct {
	cfg       Config
	log       *slog.Logger
	ns        *server.Server
	nc        *nats.Conn
	disp      *dispatcher.Dispatcher
	loader    *loader
	replays   *replays
	ingressLn net.Listener
	displayLn net.Listener
	webhookLn net.Listener
	ep        Endpoints
	status    atomic.Pointer[Status]
	ran       atomic.Bool
}

// New checks cfg, binds the listeners and starts the NATS server. Run does
// the rest; if Run is never called, Close releases what New started.
func New(cfg Config) (_ *Runtime, err error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, log: cfg.Log}
	defer func() {
		if err != nil {
			rt.Close()
		}
	}()
	var state *devState
	var prov *provision.Provisioner
	for _, step := range []func() error{
		func() (err error) { state, err = openDataDir(cfg.DataDir); return err },
		rt.listen,
		rt.startNATS,
		func() (err error) { prov, err = rt.startDataPlane(); return err },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	rt.loader = newLoader(cfg.Paths, rt.ep.Ingress, prov, cfg.DataDir, state, rt.webhookLn != nil)
	rt.loader.authenticate, rt.loader.publishMode = cfg.Verifier != nil, cfg.DefaultPublishMode
	if rt.replays, err = newReplays(prov.JetStream(), cfg.DataDir, rt.log); err != nil {
		return nil, err
	}
	return rt, nil
}

// complete checks the required settings and fills in the defaults.
func (cfg *Config) complete() error {
	if len(cfg.Paths) == 0 {
		return errors.New("no manifests: give at least one file or directory")
	}
	if cfg.DataDir == "" || cfg.Listen == "" {
		return errors.New("the data directory and the listen address are required")
	}
	if _, err := ListFiles(cfg.Paths); err != nil {
		return fmt.Errorf("manifests: %w", err)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	for _, w := range []*io.Writer{&cfg.Banner, &cfg.DisplayOut} {
		if *w == nil {
			*w = io.Discard
		}
	}
	if cfg.Sources == nil {
		cfg.Sources = NewGroupSources(cfg.Log, nil, cfg.Tokens)
	}
	if cfg.NATSHost == "" {
		cfg.NATSHost = "127.0.0.1"
	}
	if cfg.NATSPort == 0 {
		cfg.NATSPort = -1
	}
	return nil
}

// openDataDir creates the data directory when missing and reads herald
// dev's state from it.
func openDataDir(dir string) (*devState, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	state, err := loadState(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return state, nil
}

// listen binds the ingress, display and webhook listeners, and checks that
// a fixed NATS port is free.
func (rt *Runtime) listen() error {
	cfg := rt.cfg
	var err error
	if rt.ingressLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fmt.Errorf("ingress listener: %w (another herald dev? pick another address with --listen)", err)
	}
	if cfg.DisplayListen != "" {
		if rt.displayLn, err = net.Listen("tcp", cfg.DisplayListen); err != nil {
			return fmt.Errorf("display listener: %w (disable the built-in display sink with an empty --display-listen)", err)
		}
	}
	if cfg.WebhookListen != "" {
		if rt.webhookLn, err = net.Listen("tcp", cfg.WebhookListen); err != nil {
			return fmt.Errorf("webhook listener: %w (pick another address with --webhook-listen, or disable webhook sources with an empty one)", err)
		}
	}
	if cfg.NATSPort > 0 {
		// The server reports a busy port only after its start timeout; check first.
		addr := net.JoinHostPort(cfg.NATSHost, strconv.Itoa(cfg.NATSPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("nats listener: %w (another herald dev or NATS server? pick another port or use --nats-listen random)", err)
		}
		ln.Close()
	}
	return nil
}

// startNATS starts the embedded NATS server on the data directory.
func (rt *Runtime) startNATS() error {
	var err error
	rt.ns, err = natsserver.Run(natsserver.Options{StoreDir: rt.cfg.DataDir, Host: rt.cfg.NATSHost, Port: rt.cfg.NATSPort})
	return err
}

// startDataPlane connects to the NATS server, creates the plan bucket and
// the dispatcher, and records the endpoints.
func (rt *Runtime) startDataPlane() (*provision.Provisioner, error) {
	connect := []nats.Option{nats.Name("herald dev")}
	if !rt.cfg.NATSOverTCP {
		connect = append(connect, nats.InProcessServer(rt.ns))
	}
	var err error
	if rt.nc, err = nats.Connect(rt.ns.ClientURL(), connect...); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(rt.nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prov, err := provision.New(ctx, js, 1)
	if err != nil {
		return nil, err
	}
	if rt.disp, err = dispatcher.New(rt.nc, dispatcher.Options{Logger: rt.cfg.Log, HTTPClient: rt.cfg.HTTPClient,
		Verifier: rt.cfg.Verifier, Tokens: rt.cfg.Tokens, TracerProvider: rt.cfg.TracerProvider, Registry: rt.cfg.Registry}); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	rt.ep = Endpoints{
		Ingress: "http://" + dialAddr(rt.ingressLn.Addr()),
		NATS:    rt.ns.ClientURL(),
		DataDir: rt.cfg.DataDir,
	}
	if rt.displayLn != nil {
		rt.ep.Display = "http://" + dialAddr(rt.displayLn.Addr()) + "/"
	}
	if rt.webhookLn != nil {
		rt.ep.Webhooks = "http://" + dialAddr(rt.webhookLn.Addr())
	}
	return prov, nil
}

// dialAddr is addr with an unspecified IP (0.0.0.0, ::) replaced by loopback,
// so that it can be dialled.
func dialAddr(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// Endpoints returns where the runtime serves.
func (rt *Runtime) Endpoints() Endpoints { return rt.ep }

// Status returns the outcome of the latest load of the manifests, nil before the first.
func (rt *Runtime) Status() *Status { return rt.status.Load() }

// Ready reports whether the manifests are loaded and the dispatcher is ready.
func (rt *Runtime) Ready() error {
	if rt.status.Load() == nil {
		return errors.New("manifests not loaded yet")
	}
	return rt.disp.Ready()
}

// Run loads and applies the manifests, serves ingress, delivery, the
// display sink and the webhooks, runs the sources, and reloads the
// manifests when they change, until ctx is done. Then it stops the webhooks
// and the sources, stops accepting events, lets the dispatcher finish the
// deliveries under way, and shuts the NATS server down.
func (rt *Runtime) Run(ctx context.Context) error {
	if rt.ran.Swap(true) {
		return errors.New("runtime already ran")
	}
	defer rt.Close()

	w, err := newWatcher(rt.cfg.Paths, rt.log)
	if err != nil {
		return fmt.Errorf("watch manifests: %w", err)
	}
	st, err := rt.loader.load(ctx)
	if err != nil {
		w.fs.Close()
		return err
	}
	sv := rt.serve(ctx)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	changed := make(chan struct{}, 1)
	go w.run(wctx, rt.cfg.Debounce, changed)
	rt.begin(ctx, st)
	runErr := rt.loop(ctx, sv, changed)
	rt.log.Info("herald dev: shutting down")
	wcancel()
	return rt.shutdown(sv, runErr)
}

// serving is what serve started.
type serving struct {
	ingress, display, webhooks *http.Server
	// dispDone receives the dispatcher's result; dcancel stops it.
	dispDone chan error
	dcancel  context.CancelFunc
	// srvErr receives the HTTP servers' failures.
	srvErr chan error
}

// serve starts the dispatcher and the ingress, display and webhook servers.
func (rt *Runtime) serve(ctx context.Context) *serving {
	dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
	sv := &serving{dispDone: make(chan error, 1), dcancel: dcancel, srvErr: make(chan error, 3)}
	go func() { sv.dispDone <- rt.disp.Run(dctx) }()

	serve := func(name string, srv *http.Server, ln net.Listener) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sv.srvErr <- fmt.Errorf("%s server: %w", name, err)
		}
	}
	if rt.displayLn != nil {
		sv.display = &http.Server{Handler: NewDisplay(rt.cfg.DisplayOut, rt.log), ReadHeaderTimeout: 10 * time.Second}
		go serve("display", sv.display, rt.displayLn)
	}
	sv.ingress = &http.Server{Handler: rt.disp, ReadHeaderTimeout: 10 * time.Second}
	go serve("ingress", sv.ingress, rt.ingressLn)
	if rt.webhookLn != nil {
		h := rt.cfg.Sources.Handler()
		if h == nil {
			h = http.NotFoundHandler()
		}
		sv.webhooks = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go serve("webhook", sv.webhooks, rt.webhookLn)
	}
	return sv
}

// begin starts the sources of the first load once the dispatcher serves
// the Topics they send to, publishes the status and prints the banner.
func (rt *Runtime) begin(ctx context.Context, st *Status) {
	rt.waitReady(ctx)
	rt.syncSources(ctx, st)
	rt.replays.sync(ctx, st.Replays)
	rt.status.Store(st)
	for _, s := range st.Skipped {
		rt.log.Info("skipped a manifest of another kind", "file", s.Origin.String(), "kind", s.Kind, "apiVersion", s.APIVersion, "name", s.Name)
	}
	WriteBanner(rt.cfg.Banner, rt.ep, st)
}

// loop reloads the manifests on every change until ctx is done or the
// dispatcher or a server fails, which it returns.
func (rt *Runtime) loop(ctx context.Context, sv *serving, changed <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			rt.reload(ctx)
		case err := <-sv.dispDone:
			sv.dispDone = nil
			return fmt.Errorf("dispatcher stopped: %w", err)
		case err := <-sv.srvErr:
			return err
		}
	}
}

// shutdown stops what serve started, in order: the webhooks and sources
// (their requests and events in flight still reach the ingress), the
// ingress, the dispatcher once its deliveries under way are done, and the
// display. It returns runErr, else the dispatcher's failure.
func (rt *Runtime) shutdown(sv *serving, runErr error) error {
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if sv.webhooks != nil {
		if err := sv.webhooks.Shutdown(sctx); err != nil {
			rt.log.Warn("webhook shutdown", "error", err)
		}
	}
	rt.cfg.Sources.Stop()
	rt.replays.stop()
	if err := sv.ingress.Shutdown(sctx); err != nil {
		rt.log.Warn("ingress shutdown", "error", err)
	}
	sv.dcancel()
	if sv.dispDone != nil {
		if err := <-sv.dispDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
			runErr = fmt.Errorf("dispatcher: %w", err)
		}
	}
	if sv.display != nil {
		if err := sv.display.Shutdown(sctx); err != nil {
			rt.log.Warn("display shutdown", "error", err)
		}
	}
	return runErr
}

// waitReady waits, for a few seconds at most, until the dispatcher is
// ready, so that the banner's curl works once it is printed.
func (rt *Runtime) waitReady(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := rt.disp.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			rt.log.Warn("the dispatcher is not ready yet", "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncSources hands st.Sources to the SourceRunner and moves the sources
// it could not start from st.Sources to st.Errors.
func (rt *Runtime) syncSources(ctx context.Context, st *Status) {
	errs := rt.cfg.Sources.Sync(ctx, st.Sources)
	if len(errs) == 0 {
		return
	}
	var running []ResolvedSource
	for _, rs := range st.Sources {
		if err, failed := errs[rs.Key()]; failed {
			st.Errors = append(st.Errors, &ManifestError{Origin: rs.Origin, Object: "eventsource " + rs.Key(), Err: err})
			continue
		}
		running = append(running, rs)
	}
	st.Sources = running
}

// reload loads the manifests again, applies them, restarts the sources
// that changed and logs what changed.
func (rt *Runtime) reload(ctx context.Context) {
	prev := rt.status.Load()
	st, err := rt.loader.load(ctx)
	if err != nil {
		rt.log.Error("reload: nothing changed", "error", err)
		return
	}
	rt.syncSources(ctx, st)
	rt.replays.sync(ctx, st.Replays)
	rt.status.Store(st)
	changes := Changes(prev, st)
	if len(changes) == 0 {
		rt.log.Info("reload: nothing to change")
	}
	for _, c := range changes {
		rt.log.Info("reload: " + c)
	}
	for _, s := range st.Skipped {
		if !slices.ContainsFunc(prev.Skipped, func(p Skipped) bool { return p.Origin.File == s.Origin.File && p.Kind == s.Kind && p.Name == s.Name }) {
			rt.log.Info("skipped a manifest of another kind", "file", s.Origin.String(), "kind", s.Kind, "apiVersion", s.APIVersion, "name", s.Name)
		}
	}
	for _, err := range st.Errors {
		rt.log.Warn("manifest error", "error", err)
	}
	for _, n := range st.Notes {
		rt.log.Warn(n)
	}
	if len(st.Errors) == 0 && len(prev.Errors) > 0 {
		rt.log.Info("reload: every manifest error is fixed")
	}
}

// Close releases what New started: listeners, the NATS connection and
// server. Run calls it on return.
func (rt *Runtime) Close() {
	for _, ln := range []net.Listener{rt.ingressLn, rt.displayLn, rt.webhookLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if rt.nc != nil {
		rt.nc.Close()
	}
	if rt.ns != nil {
		rt.ns.Shutdown()
		rt.ns.WaitForShutdown()
	}
}
