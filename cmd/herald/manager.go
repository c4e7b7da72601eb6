package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/internal/tracing"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

func init() {
	commands["manager"] = runManager
}

// managerConfig is herald manager's validated configuration.
type managerConfig struct {
	// NATSConfig is how the manager reaches NATS.
	cli.NATSConfig
	// DispatcherNATSSecret names the Secret, in each Topic's namespace,
	// holding the dispatchers' copies of the NATS files (resources.NATS).
	DispatcherNATSSecret string
	// DispatcherNATSSource is the Secret, "namespace/name", the manager
	// copies into each Topic's namespace for its dispatchers instead.
	DispatcherNATSSource types.NamespacedName
	// NetworkPolicy restricts traffic to dispatcher Pods.
	NetworkPolicy resources.NetworkPolicy
	// Image is Herald's image as dispatcher and adapter Deployments run it.
	Image resources.Image
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
	// Namespaces to watch; empty means all.
	Namespaces []string
	// LeaderElect enables leader election, in LeaderElectionNamespace
	// (default: the manager's own namespace when in a cluster).
	LeaderElect             bool
	LeaderElectionNamespace string
	// MetricsBindAddress and HealthProbeBindAddress serve /metrics and
	// /healthz, /readyz; "0" disables.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// PlanReplicas is the replica count of the plan bucket.
	PlanReplicas int
	// LogLevel is the lowest level logged (logging.ParseLevel).
	LogLevel slog.Level
	// DefaultPublishMode is the publish policy of Topics without
	// spec.publishers.
	DefaultPublishMode plan.PublishMode
	// DefaultDispatcherMode is the dispatcher mode of Topics that do not
	// choose one.
	DefaultDispatcherMode v1alpha1.DispatcherMode
	// Shared sizes the namespaces' shared dispatchers.
	Shared resources.SharedDispatcherConfig
	// KEDA is how KEDA's scaler reaches NATS.
	KEDA resources.KEDA
	// TracingEnv is the manager's OpenTelemetry environment
	// (tracing.Forwarded), passed on to the dispatchers it creates.
	TracingEnv []corev1.EnvVar
	// TraceReconciles records a span per reconcile while tracing is on.
	TraceReconciles bool
}

const managerUsage = `Usage: herald manager [flags]

Runs the Herald operator: reconciles Topics, Subscriptions and EventSources
into JetStream streams, consumers and dispatch plans, and dispatcher and
adapter Deployments. Flags default to the environment variables named.

Flags:
`

// parseManagerConfig reads the flags in args, with defaults from getenv,
// and validates them.
func parseManagerConfig(args []string, getenv func(string) string) (managerConfig, error) {
	fs := cli.NewFlagSet("manager", managerUsage)
	envOr := cli.EnvDefault(getenv)
	var (
		c           managerConfig
		namespaces  string
		logFlags    logging.Flags
		pullPolicy  string
		pullSecrets string
		publishMode string
		natsSource  string
		metricsNS   string
		dispMode    string
		sharedRes   string
		sharedScale string
	)
	c.RegisterNATSFlags(fs, getenv)
	fs.StringVar(&c.DispatcherNATSSecret, "dispatcher-nats-secret", getenv("HERALD_DISPATCHER_NATS_SECRET"),
		"Secret in each Topic's namespace with the dispatchers' NATS files: keys nats.creds, ca.crt, tls.crt, tls.key, "+
			"as the manager's own --nats-* flags ask ($HERALD_DISPATCHER_NATS_SECRET)")
	fs.StringVar(&natsSource, "dispatcher-nats-source", getenv("HERALD_DISPATCHER_NATS_SOURCE"),
		"Secret (namespace/name) the manager copies into each Topic's namespace for its dispatchers, keys as --dispatcher-nats-secret; "+
			"excludes --dispatcher-nats-secret ($HERALD_DISPATCHER_NATS_SOURCE)")
	fs.BoolVar(&c.NetworkPolicy.Enabled, "dispatcher-network-policy", getenv("HERALD_DISPATCHER_NETWORK_POLICY") == "true",
		"give each dispatcher a NetworkPolicy: its ingress port open, its metrics port open to --metrics-namespace-selector only ($HERALD_DISPATCHER_NETWORK_POLICY)")
	fs.StringVar(&metricsNS, "metrics-namespace-selector", getenv("HERALD_METRICS_NAMESPACE_SELECTOR"),
		"label selector of the namespaces that may scrape dispatcher metrics under --dispatcher-network-policy, "+
			"e.g. kubernetes.io/metadata.name=monitoring; empty for none ($HERALD_METRICS_NAMESPACE_SELECTOR)")
	fs.StringVar(&c.Image.Name, "image", getenv("HERALD_IMAGE"), "Herald image for dispatcher and adapter Deployments ($HERALD_IMAGE)")
	fs.StringVar(&pullPolicy, "image-pull-policy", getenv("HERALD_IMAGE_PULL_POLICY"),
		"imagePullPolicy of dispatcher and adapter containers: Always, IfNotPresent or Never; empty for Kubernetes' default ($HERALD_IMAGE_PULL_POLICY)")
	fs.StringVar(&pullSecrets, "image-pull-secrets", getenv("HERALD_IMAGE_PULL_SECRETS"),
		"image pull Secrets of dispatcher and adapter Pods, comma-separated; each must exist in the workload's namespace ($HERALD_IMAGE_PULL_SECRETS)")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", envOr("HERALD_CLUSTER_DOMAIN", controllers.DefaultClusterDomain), "cluster DNS domain ($HERALD_CLUSTER_DOMAIN)")
	fs.StringVar(&namespaces, "namespaces", getenv("HERALD_NAMESPACES"), "namespaces to watch, comma-separated; empty for all ($HERALD_NAMESPACES)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", false, "elect a leader, for running several manager replicas")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the manager's own, in a cluster)")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", ":9090", `address of /metrics; "0" disables`)
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", ":8081", `address of /healthz and /readyz; "0" disables`)
	fs.IntVar(&c.PlanReplicas, "plan-replicas", 1, "replicas of the plan key-value bucket (1, 3 or 5)")
	fs.StringVar(&publishMode, "default-publish-policy", envOr("HERALD_DEFAULT_PUBLISH_POLICY", string(compiler.DefaultPublishMode)),
		"who may publish to a Topic without spec.publishers: allow-same-namespace (ServiceAccounts of the Topic's namespace), "+
			"authenticated (any valid token), allow-all (no authentication) or deny-all ($HERALD_DEFAULT_PUBLISH_POLICY)")
	fs.StringVar(&dispMode, "default-dispatcher-mode", envOr("HERALD_DEFAULT_DISPATCHER_MODE", string(v1alpha1.DispatcherShared)),
		"dispatcher of a Topic that does not choose one in spec.dispatcher.mode: shared (one dispatcher per namespace for all its shared Topics) "+
			"or dedicated (a dispatcher Deployment per Topic) ($HERALD_DEFAULT_DISPATCHER_MODE)")
	sharedReplicas := fs.Int("shared-dispatcher-replicas", 1, "replicas of each namespace's shared dispatcher Deployment")
	fs.StringVar(&sharedRes, "shared-dispatcher-resources", getenv("HERALD_SHARED_DISPATCHER_RESOURCES"),
		`resources of the shared dispatcher container as JSON, e.g. {"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"memory":"256Mi"}} ($HERALD_SHARED_DISPATCHER_RESOURCES)`)
	fs.StringVar(&sharedScale, "shared-dispatcher-autoscaling", getenv("HERALD_SHARED_DISPATCHER_AUTOSCALING"),
		`autoscale each shared dispatcher on the lag of its Topics' Subscriptions instead of --shared-dispatcher-replicas, as JSON with the fields of a Topic's `+
			`spec.dispatcher.autoscaling, e.g. {"minReplicas":1,"maxReplicas":10,"targetLag":100} ($HERALD_SHARED_DISPATCHER_AUTOSCALING)`)
	fs.StringVar(&c.KEDA.MonitoringEndpoint, "keda-nats-monitoring-endpoint", getenv("HERALD_KEDA_NATS_MONITORING_ENDPOINT"),
		"host:port of the NATS monitoring endpoint KEDA's NATS JetStream scaler reads for Topics with spec.dispatcher.autoscaling; "+
			"empty: no ScaledObjects, the replicas of autoscaled dispatchers are left to a scaler of yours ($HERALD_KEDA_NATS_MONITORING_ENDPOINT)")
	fs.StringVar(&c.KEDA.Account, "keda-nats-account", envOr("HERALD_KEDA_NATS_ACCOUNT", "$G"), "NATS account of Herald's streams, for KEDA's scaler ($HERALD_KEDA_NATS_ACCOUNT)")
	fs.BoolVar(&c.KEDA.UseHTTPS, "keda-nats-monitoring-https", false, "KEDA reads the NATS monitoring endpoint over HTTPS")
	fs.BoolVar(&c.TraceReconciles, "trace-reconciles", getenv("HERALD_TRACE_RECONCILES") != "false",
		"while OpenTelemetry tracing is on (OTEL_TRACES_EXPORTER, passed on to the dispatchers), record a span per reconcile ($HERALD_TRACE_RECONCILES)")
	logFlags.BindFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return managerConfig{}, err
	}
	if fs.NArg() > 0 {
		return managerConfig{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.Namespaces = cli.SplitList(namespaces)
	if natsSource != "" {
		ns, name, ok := strings.Cut(natsSource, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return managerConfig{}, fmt.Errorf("--dispatcher-nats-source %q: want namespace/name", natsSource)
		}
		c.DispatcherNATSSource = types.NamespacedName{Namespace: ns, Name: name}
	}
	if metricsNS != "" {
		sel, err := metav1.ParseToLabelSelector(metricsNS)
		if err != nil {
			return managerConfig{}, fmt.Errorf("--metrics-namespace-selector: %w", err)
		}
		c.NetworkPolicy.MetricsNamespaces = sel
	}
	c.Image.PullPolicy = corev1.PullPolicy(pullPolicy)
	c.Image.PullSecrets = cli.SplitList(pullSecrets)
	lvl, err := logFlags.Level()
	if err != nil {
		return managerConfig{}, err
	}
	c.LogLevel = lvl
	mode, err := compiler.ParsePublishMode(publishMode)
	if err != nil {
		return managerConfig{}, fmt.Errorf("--default-publish-policy: %w", err)
	}
	c.DefaultPublishMode = mode
	switch m := v1alpha1.DispatcherMode(dispMode); m {
	case v1alpha1.DispatcherShared, v1alpha1.DispatcherDedicated:
		c.DefaultDispatcherMode = m
	default:
		return managerConfig{}, fmt.Errorf("--default-dispatcher-mode %q: want shared or dedicated", dispMode)
	}
	if *sharedReplicas < 1 || *sharedReplicas > 50 {
		return managerConfig{}, fmt.Errorf("--shared-dispatcher-replicas %d: want 1 to 50", *sharedReplicas)
	}
	c.Shared.Replicas = int32(*sharedReplicas)
	if sharedRes != "" {
		dec := json.NewDecoder(strings.NewReader(sharedRes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c.Shared.Resources); err != nil {
			return managerConfig{}, fmt.Errorf("--shared-dispatcher-resources: %w", err)
		}
	}
	if err := tracing.Check(getenv); err != nil {
		return managerConfig{}, err
	}
	for _, k := range tracing.Forwarded {
		if v := getenv(k); v != "" {
			c.TracingEnv = append(c.TracingEnv, corev1.EnvVar{Name: k, Value: v})
		}
	}
	if sharedScale != "" {
		a, err := parseAutoscaling(sharedScale)
		if err != nil {
			return managerConfig{}, fmt.Errorf("--shared-dispatcher-autoscaling: %w", err)
		}
		c.Shared.Autoscaling = a
	}
	return c, c.validate()
}

func (c managerConfig) validate() error {
	errs := c.ValidateNATS()
	if c.Image.Name == "" {
		errs = append(errs, errors.New("--image (or HERALD_IMAGE) is required: the image dispatcher and adapter Deployments run"))
	}
	switch c.Image.PullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", c.Image.PullPolicy))
	}
	if c.ClusterDomain == "" {
		errs = append(errs, errors.New("--cluster-domain must not be empty"))
	}
	copied := c.DispatcherNATSSource.Name != ""
	switch {
	case copied && c.DispatcherNATSSecret != "":
		errs = append(errs, errors.New("--dispatcher-nats-secret and --dispatcher-nats-source exclude each other"))
	case (c.NATSCreds != "" || c.NATSUser != "" || c.NATSTLSCA != "" || c.NATSTLSCert != "") && c.DispatcherNATSSecret == "" && !copied:
		errs = append(errs, errors.New("with NATS credentials or TLS files, --dispatcher-nats-secret or --dispatcher-nats-source must name the Secret dispatchers read theirs from"))
	}
	switch c.PlanReplicas {
	case 1, 3, 5:
	default:
		errs = append(errs, fmt.Errorf("--plan-replicas %d: want 1, 3 or 5", c.PlanReplicas))
	}
	return errors.Join(errs...)
}

// controllersConfig is the reconcilers' share of the configuration.
func (c managerConfig) controllersConfig() controllers.Config {
	return controllers.Config{
		ClusterDomain: c.ClusterDomain,
		Dispatcher: resources.DispatcherConfig{
			Image: c.Image,
			NATS: resources.NATS{
				URL:       c.NATSURL,
				Secret:    c.DispatcherNATSSecret,
				Copied:    c.DispatcherNATSSource.Name != "",
				Creds:     c.NATSCreds != "",
				Password:  c.NATSUser != "",
				TLSCA:     c.NATSTLSCA != "",
				TLSClient: c.NATSTLSCert != "",
			},
			NetworkPolicy: c.NetworkPolicy,
			Shared:        c.Shared,
			Env:           c.TracingEnv,
		},
		Adapter:               resources.AdapterConfig{Image: c.Image},
		DefaultPublishMode:    c.DefaultPublishMode,
		DefaultDispatcherMode: c.DefaultDispatcherMode,
		KEDA:                  c.KEDA,
		DispatcherNATSSource:  c.DispatcherNATSSource,
		DispatcherNATSCAFile:  c.NATSTLSCA,
	}
}

func runManager(ctx context.Context, args []string) error {
	cfg, err := parseManagerConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	setManagerLogger(logging.NewHandler(os.Stderr, logging.JSON, cfg.LogLevel))
	logger := ctrl.Log.WithName("manager")

	nc, err := nats.Connect(cfg.NATSURL, cfg.NATSOptions("herald-manager")...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	prov, err := newProvisioner(ctx, js, cfg.PlanReplicas, func(err error) {
		logger.Error(err, "waiting for NATS JetStream", "url", cfg.NATSURL)
	})
	if err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cacheOpts := cache.Options{ByObject: controllers.CacheByObject()}
	if len(cfg.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range cfg.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress:        cfg.HealthProbeBindAddress,
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              "herald-manager.eventing.herald.dev",
		LeaderElectionNamespace:       cfg.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("nats", func(*http.Request) error {
		if !nc.IsConnected() {
			return fmt.Errorf("NATS is %s", nc.Status())
		}
		return nil
	}); err != nil {
		return err
	}
	ccfg := cfg.controllersConfig()
	if cfg.TraceReconciles {
		tp, err := tracing.FromEnv(ctx, os.Getenv, "herald-manager", os.Stderr)
		if err != nil {
			return err
		}
		if tp != nil {
			ccfg.TracerProvider = tp
			defer tp.Close(nil)
		}
	}
	if err := controllers.Setup(ctx, mgr, prov, ccfg); err != nil {
		return err
	}
	logger.Info("starting", "nats", cfg.NATSURL, "image", cfg.Image.Name, "namespaces", cfg.Namespaces, "leaderElect", cfg.LeaderElect,
		"defaultPublishPolicy", cfg.DefaultPublishMode)
	return mgr.Start(ctx)
}

// newProvisioner creates the plan bucket, retrying while NATS is not yet
// reachable (a manager often starts before NATS does), until ctx ends.
func newProvisioner(ctx context.Context, js jetstream.JetStream, replicas int, onRetry func(error)) (*provision.Provisioner, error) {
	const wait = 2 * time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		prov, err := provision.New(attempt, js, replicas)
		cancel()
		if err == nil {
			return prov, nil
		}
		onRetry(err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("plan bucket: %w", err)
		case <-time.After(wait):
		}
	}
}

// setManagerLogger makes h the handler of every log the manager writes:
// controller-runtime's and the reconcilers' (logr, V(n) at slog level -n),
// client-go's (klog: leader election, watches) and slog's default.
func setManagerLogger(h slog.Handler) {
	log := logr.FromSlogHandler(h)
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	slog.SetDefault(slog.New(h))
}

// parseAutoscaling reads the JSON of a shared dispatcher's autoscaling and
// checks it as the Topic CRD checks spec.dispatcher.autoscaling. A shared
// dispatcher does not scale to zero either: it is the ingress of every
// shared Topic of its namespace.
func parseAutoscaling(s string) (*v1alpha1.DispatcherAutoscaling, error) {
	var a v1alpha1.DispatcherAutoscaling
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, err
	}
	minReplicas := int32(1)
	if a.MinReplicas != nil {
		minReplicas = *a.MinReplicas
	}
	switch {
	case minReplicas < 1 || minReplicas > 50:
		return nil, fmt.Errorf("minReplicas %d: want 1 to 50", minReplicas)
	case a.MaxReplicas < 1 || a.MaxReplicas > 50:
		return nil, fmt.Errorf("maxReplicas %d: want 1 to 50", a.MaxReplicas)
	case minReplicas > a.MaxReplicas:
		return nil, fmt.Errorf("minReplicas must not exceed maxReplicas")
	case a.TargetLag != nil && (*a.TargetLag < 1 || *a.TargetLag > 1000000):
		return nil, fmt.Errorf("targetLag %d: want 1 to 1000000", *a.TargetLag)
	}
	return &a, nil
}
