// Command scale measures Herald's control plane at scale: it starts a
// kube-apiserver and etcd (envtest, with a /16 service range so that every
// Topic's Service gets a ClusterIP), an embedded NATS JetStream server and
// herald manager as a process, creates Topics and Subscriptions, and reports
// how long they take to be provisioned and Ready, the manager's peak RSS and
// CPU, its API requests and reconciles per object, the JetStream API
// requests and objects, and what the manager does once everything is Ready.
//
// envtest runs no kube-controller-manager or kubelet, so no Deployment ever
// becomes available by itself. The benchmark stands in for them: it marks
// every dispatcher Deployment available (status patched as the deployment
// controller would) as soon as it appears.
//
// Phases, each printed as one line of key=value figures:
//
//	created      all objects created (the clock starts at the first create)
//	provisioned  every stream, consumer and plan (with all of its Topic's
//	             Subscriptions) exists in NATS
//	ready        every Topic and Subscription is Ready at its generation
//	idle         the -idle window after ready: CPU of the manager and of the
//	             kube-apiserver, requests and reconciles in that window
//	serve        with -serve: the dispatchers the cluster would run, started
//	             as processes on the benchmark's NATS (one per namespace in
//	             shared mode; one, for one Topic, in dedicated mode), one
//	             event POSTed to every Topic at the path of its
//	             status.address.url, the 202s and deliveries counted, and the
//	             dispatchers' RSS
//
// Topics are spread over -namespaces namespaces, bench-0, bench-1, ... (or
// -namespace alone). -dispatcher-mode is the manager's
// --default-dispatcher-mode.
//
// Usage:
//
//	go run ./hack/bench/scale [-topics 1000] [-subs 5] [-namespaces 10] [-dispatcher-mode shared] [-serve] [-idle 60s]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/internal/natsserver"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/plan"
)

type config struct {
	topics, subs int
	namespace    string
	namespaces   int
	mode         string
	serve        bool
	creators     int
	idle         time.Duration
	timeout      time.Duration
	herald       string
	keep         bool
	profile      string
	profileFor   time.Duration
}

func main() {
	var c config
	flag.IntVar(&c.topics, "topics", 1000, "Topics to create")
	flag.IntVar(&c.subs, "subs", 5, "Subscriptions per Topic")
	flag.StringVar(&c.namespace, "namespace", "bench", "namespace of the objects (with -namespaces 1)")
	flag.IntVar(&c.namespaces, "namespaces", 1, "namespaces to spread the Topics over: bench-0, bench-1, ...")
	flag.StringVar(&c.mode, "dispatcher-mode", "shared", "the manager's --default-dispatcher-mode: shared or dedicated")
	flag.BoolVar(&c.serve, "serve", false, "once Ready, run the dispatchers as processes, POST an event to every Topic and count what they accept and deliver")
	flag.IntVar(&c.creators, "creators", 16, "concurrent creating clients")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "how long to watch the manager once everything is Ready")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "give up when not all Ready after this long")
	flag.StringVar(&c.herald, "herald", "", "herald binary to run as the manager (default: build ./cmd/herald into a temporary directory)")
	flag.BoolVar(&c.keep, "keep-logs", false, "keep the manager's log (its path is printed)")
	flag.StringVar(&c.profile, "apiserver-profile", "", "write a CPU profile of the kube-apiserver, taken from the first create on, to this file")
	flag.DurationVar(&c.profileFor, "apiserver-profile-for", 20*time.Second, "length of the -apiserver-profile")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "herald-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	build := func(name string) (string, error) {
		out := filepath.Join(dir, name)
		logf("building %s", name)
		b := exec.Command("go", "build", "-o", out, "./cmd/"+name)
		b.Dir, b.Stdout, b.Stderr = root, os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return "", fmt.Errorf("build %s: %w", name, err)
		}
		return out, nil
	}
	bin, dispatcherBin := c.herald, ""
	if bin == "" {
		if bin, err = build("herald"); err != nil {
			return err
		}
	}
	if c.serve {
		if dispatcherBin, err = build("herald-dispatcher"); err != nil {
			return err
		}
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	assets, err := testenv.FindAssets(root)
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	// envtest's default /24 holds about 250 ClusterIPs.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	logf("starting kube-apiserver and etcd")
	restCfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	defer env.Stop()
	restCfg.QPS, restCfg.Burst = -1, -1
	k8s, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return err
	}

	ns, err := natsserver.Run(natsserver.Options{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	metricsAddr, healthAddr := freeAddr(), freeAddr()
	logPath := filepath.Join(dir, "manager.log")
	if c.keep {
		logPath = filepath.Join(os.TempDir(), fmt.Sprintf("herald-scale-manager-%d.log", os.Getpid()))
	}
	mgrLog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer mgrLog.Close()
	mgr := exec.Command(bin, "manager", "--nats-url", ns.ClientURL(), "--image", "herald:bench",
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", healthAddr,
		"--default-publish-policy=allow-all", "--default-dispatcher-mode="+c.mode)
	mgr.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("start manager: %w", err)
	}
	defer func() {
		_ = mgr.Process.Signal(os.Interrupt)
		_ = mgr.Wait()
		if c.keep {
			logf("manager log: %s", logPath)
		}
	}()
	if err := waitHTTP(ctx, "http://"+healthAddr+"/readyz", time.Minute); err != nil {
		return fmt.Errorf("manager not ready: %w (log: %s)", err, logPath)
	}
	apiserver := childPID("kube-apiserver")

	b := &bench{c: c, k8s: k8s, js: js, mgrPID: mgr.Process.Pid, apiPID: apiserver, metrics: "http://" + metricsAddr + "/metrics",
		natsURL: ns.ClientURL(), dispatcherBin: dispatcherBin, dir: dir}
	if b.sink, err = startSink(); err != nil {
		return err
	}
	if c.profile != "" {
		if b.rest, err = rest.RESTClientFor(restCfgForProfile(restCfg)); err != nil {
			return err
		}
	}
	watched := map[string]cache.Config{}
	for _, n := range c.namespaceNames() {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return err
		}
		watched[n] = cache.Config{}
	}
	// The benchmark watches what it waits for: listing thousands of
	// objects every half second would load the API server it measures.
	if b.cache, err = cache.New(restCfg, cache.Options{Scheme: scheme, DefaultNamespaces: watched}); err != nil {
		return err
	}
	for _, obj := range []client.Object{&v1alpha1.Topic{}, &v1alpha1.Subscription{}, &appsv1.Deployment{}} {
		if _, err := b.cache.GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	go func() { _ = b.cache.Start(ctx) }()
	if !b.cache.WaitForCacheSync(ctx) {
		return errors.New("benchmark cache did not sync")
	}
	return b.run(ctx)
}

// namespaceNames are the namespaces the Topics are spread over.
func (c config) namespaceNames() []string {
	if c.namespaces <= 1 {
		return []string{c.namespace}
	}
	names := make([]string, c.namespaces)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
	}
	return names
}

type bench struct {
	c config
	// natsURL, dispatcherBin and dir serve -serve.
	natsURL       string
	dispatcherBin string
	dir           string
	sink          *sink
	k8s           client.Client
	cache         cache.Cache
	js            jetstream.JetStream
	mgrPID        int
	apiPID        int
	metrics       string
	// rest reaches the API server's /debug/pprof for -apiserver-profile.
	rest *rest.RESTClient

	available atomic.Int64
}

// sample is a snapshot of the counters the phases report differences of.
type sample struct {
	at       time.Time
	mgrCPU   time.Duration
	apiCPU   time.Duration
	requests map[string]float64 // by method
	recon    map[string]float64 // by controller
	jsAPI    uint64
}

func (b *bench) sample(ctx context.Context) sample {
	s := sample{at: time.Now(), mgrCPU: cpuTime(b.mgrPID), apiCPU: cpuTime(b.apiPID)}
	m, err := scrape(ctx, b.metrics)
	if err != nil {
		logf("scrape manager metrics: %v", err)
	}
	s.requests = sumBy(m["rest_client_requests_total"], "method")
	s.recon = sumBy(m["controller_runtime_reconcile_total"], "controller")
	if ai, err := b.js.AccountInfo(ctx); err == nil {
		s.jsAPI = ai.API.Total
	}
	return s
}

func (b *bench) run(ctx context.Context) error {
	c := b.c
	objects := c.topics * (1 + c.subs)
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	go b.kubelet(kubeletCtx)

	start := b.sample(ctx)
	profiled := make(chan struct{})
	if b.rest != nil {
		go b.profile(ctx, profiled)
	} else {
		close(profiled)
	}
	defer func() { <-profiled }()
	if err := b.create(ctx); err != nil {
		return err
	}
	created := b.sample(ctx)
	b.phase("created", start, created, objects, "")

	deadline := start.at.Add(c.timeout)
	var provisioned, ready sample
	last := created
	for provisioned.at.IsZero() || ready.at.IsZero() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not all Ready after %s", c.timeout)
		}
		time.Sleep(500 * time.Millisecond)
		if time.Since(last.at) >= 5*time.Second {
			last = b.progress(ctx, start, last)
		}
		if provisioned.at.IsZero() {
			ok, err := b.provisioned(ctx)
			if err != nil {
				return err
			}
			if ok {
				provisioned = b.sample(ctx)
				b.phase("provisioned", start, provisioned, objects, b.natsObjects(ctx))
			}
		}
		if !provisioned.at.IsZero() {
			nt, ns, err := b.notReady(ctx)
			if err != nil {
				return err
			}
			if nt+ns == 0 {
				ready = b.sample(ctx)
				b.phase("ready", start, ready, objects, fmt.Sprintf("deployments=%d deployments_available=%d", b.deployments(ctx), b.available.Load()))
			}
		}
	}
	stopKubelet()

	time.Sleep(c.idle)
	idle := b.sample(ctx)
	b.phase("idle", ready, idle, objects, "")
	rss := peakRSS(b.mgrPID)
	if c.serve {
		if err := b.serveAll(ctx); err != nil {
			return err
		}
	}

	fmt.Printf("\nsummary: %d Topics x %d Subscriptions (%d objects): provisioned in %.1fs, all Ready in %.1fs after the first create; "+
		"manager peak RSS %d MiB, %.1f CPU-seconds until Ready; in the %s after Ready the manager used %.2f cores and the kube-apiserver %.2f, "+
		"with %.1f API requests/s and %.1f reconciles/s.\n",
		c.topics, c.subs, objects, provisioned.at.Sub(start.at).Seconds(), ready.at.Sub(start.at).Seconds(),
		rss>>20, (ready.mgrCPU - start.mgrCPU).Seconds(), c.idle,
		cores(idle.mgrCPU-ready.mgrCPU, idle.at.Sub(ready.at)), cores(idle.apiCPU-ready.apiCPU, idle.at.Sub(ready.at)),
		perSec(total(idle.requests)-total(ready.requests), idle.at.Sub(ready.at)),
		perSec(total(idle.recon)-total(ready.recon), idle.at.Sub(ready.at)))
	return nil
}

// profile writes a CPU profile of the kube-apiserver to -apiserver-profile.
func (b *bench) profile(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	data, err := b.rest.Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(b.c.profileFor.Seconds()))).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(b.c.profile, data, 0o644)
	}
	if err != nil {
		logf("apiserver profile: %v", err)
		return
	}
	logf("apiserver profile: %s", b.c.profile)
}

// restCfgForProfile is cfg for a plain REST client of the API server's
// non-resource paths.
func restCfgForProfile(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{}
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	c.Timeout = 0
	return c
}

// progress logs how many objects are Ready and the CPU used since last.
func (b *bench) progress(ctx context.Context, start, last sample) sample {
	now := sample{at: time.Now(), mgrCPU: cpuTime(b.mgrPID), apiCPU: cpuTime(b.apiPID)}
	nt, ns, err := b.notReady(ctx)
	if err != nil {
		return now
	}
	d := now.at.Sub(last.at)
	logf("t=%.0fs topics_ready=%d subs_ready=%d deployments_available=%d mgr_cores=%.2f apiserver_cores=%.2f",
		now.at.Sub(start.at).Seconds(), b.c.topics-nt, b.c.topics*b.c.subs-ns, b.available.Load(),
		cores(now.mgrCPU-last.mgrCPU, d), cores(now.apiCPU-last.apiCPU, d))
	return now
}

// phase prints one phase's line: figures between from and to.
func (b *bench) phase(name string, from, to sample, objects int, extra string) {
	d := to.at.Sub(from.at)
	var f []string
	add := func(k string, v any) { f = append(f, fmt.Sprintf("%s=%v", k, v)) }
	add("phase", name)
	add("topics", b.c.topics)
	add("subs_per_topic", b.c.subs)
	add("elapsed_s", fmt.Sprintf("%.1f", d.Seconds()))
	add("mgr_cpu_s", fmt.Sprintf("%.1f", (to.mgrCPU-from.mgrCPU).Seconds()))
	add("mgr_cores", fmt.Sprintf("%.2f", cores(to.mgrCPU-from.mgrCPU, d)))
	add("apiserver_cores", fmt.Sprintf("%.2f", cores(to.apiCPU-from.apiCPU, d)))
	add("mgr_rss_peak_mib", peakRSS(b.mgrPID)>>20)
	req := total(to.requests) - total(from.requests)
	add("api_requests", int(req))
	add("api_requests_per_object", fmt.Sprintf("%.2f", req/float64(objects)))
	var methods []string
	for m := range to.requests {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		if v := to.requests[m] - from.requests[m]; v > 0 {
			add("api_"+strings.ToLower(m), int(v))
		}
	}
	add("reconciles_topic", int(to.recon["topic"]-from.recon["topic"]))
	add("reconciles_subscription", int(to.recon["subscription"]-from.recon["subscription"]))
	js := to.jsAPI - from.jsAPI
	add("js_api_requests", js)
	add("js_api_requests_per_object", fmt.Sprintf("%.2f", float64(js)/float64(objects)))
	if extra != "" {
		f = append(f, extra)
	}
	fmt.Println(strings.Join(f, " "))
}

func (b *bench) create(ctx context.Context) error {
	c := b.c
	work := make(chan client.Object)
	errc := make(chan error, c.creators)
	var wg sync.WaitGroup
	for range c.creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for obj := range work {
				if err := b.k8s.Create(ctx, obj); err != nil {
					errc <- fmt.Errorf("create %s: %w", obj.GetName(), err)
					return
				}
			}
		}()
	}
	sink := b.sink.url
	namespaces := c.namespaceNames()
	var err error
loop:
	for i := range c.topics {
		topic, ns := fmt.Sprintf("t%04d", i), namespaces[i%len(namespaces)]
		objs := []client.Object{&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: topic}}}
		for j := range c.subs {
			objs = append(objs, &v1alpha1.Subscription{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-s%d", topic, j)},
				Spec:       v1alpha1.SubscriptionSpec{Topic: topic, Subscriber: v1alpha1.Destination{URI: &sink}},
			})
		}
		for _, o := range objs {
			select {
			case work <- o:
			case err = <-errc:
				break loop
			}
		}
	}
	close(work)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errc:
	default:
	}
	return err
}

// kubelet marks the operator's Deployments available, as the deployment
// controller would once their Pods run, with as many concurrent updates as
// its default --concurrent-deployment-syncs (5).
func (b *bench) kubelet(ctx context.Context) {
	const workers = 5
	var mu sync.Mutex
	done := map[string]bool{}
	for ctx.Err() == nil {
		var list appsv1.DeploymentList
		if err := b.cache.List(ctx, &list, client.MatchingLabels{resources.LabelManagedBy: resources.ManagedBy}, client.UnsafeDisableDeepCopy); err != nil {
			if ctx.Err() == nil {
				logf("list deployments: %v", err)
			}
		}
		work := make(chan *appsv1.Deployment)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range work {
					if b.markAvailable(ctx, d) {
						mu.Lock()
						if !done[d.Namespace+"/"+d.Name] {
							b.available.Add(1)
						}
						done[d.Namespace+"/"+d.Name] = true
						mu.Unlock()
					}
				}
			}()
		}
		for i := range list.Items {
			d := &list.Items[i]
			mu.Lock()
			skip := done[d.Namespace+"/"+d.Name] && d.Status.ObservedGeneration == d.Generation
			mu.Unlock()
			if !skip {
				work <- d.DeepCopy()
			}
		}
		close(work)
		wg.Wait()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// markAvailable writes the status of an available Deployment into d and
// reports whether the API server took it (not on a conflict: the next
// round sees the new generation).
func (b *bench) markAvailable(ctx context.Context, d *appsv1.Deployment) bool {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		ReadyReplicas: replicas, AvailableReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
		},
	}
	return b.k8s.Status().Update(ctx, d) == nil
}

// provisioned reports whether NATS holds every stream and consumer and every
// Topic's plan holds all of its Subscriptions.
func (b *bench) provisioned(ctx context.Context) (bool, error) {
	ai, err := b.js.AccountInfo(ctx)
	if err != nil {
		return false, err
	}
	// The plan bucket and the counter stream are streams too.
	if ai.Streams < b.c.topics+2 || ai.Consumers < b.c.topics*b.c.subs {
		return false, nil
	}
	kv, err := b.js.KeyValue(ctx, plan.KVBucket)
	if err != nil {
		return false, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return false, err
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	if n < b.c.topics {
		return false, nil
	}
	// Only the Topics' status says cheaply whether each plan is complete.
	var topics v1alpha1.TopicList
	if err := b.cache.List(ctx, &topics, client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	for _, t := range topics.Items {
		if int(t.Status.Subscriptions) < b.c.subs {
			return false, nil
		}
	}
	return true, nil
}

func (b *bench) natsObjects(ctx context.Context) string {
	ai, err := b.js.AccountInfo(ctx)
	if err != nil {
		return ""
	}
	keys := 0
	if kv, err := b.js.KeyValue(ctx, plan.KVBucket); err == nil {
		if l, err := kv.ListKeys(ctx); err == nil {
			for range l.Keys() {
				keys++
			}
		}
	}
	return fmt.Sprintf("nats_streams=%d nats_consumers=%d nats_plan_keys=%d", ai.Streams, ai.Consumers, keys)
}

// notReady counts the Topics and Subscriptions not Ready at their generation.
func (b *bench) notReady(ctx context.Context) (topics, subs int, err error) {
	var tl v1alpha1.TopicList
	if err := b.cache.List(ctx, &tl, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, err
	}
	for _, t := range tl.Items {
		if !isReady(t.Status.Conditions, t.Status.ObservedGeneration, t.Generation) {
			topics++
		}
	}
	var sl v1alpha1.SubscriptionList
	if err := b.cache.List(ctx, &sl, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, err
	}
	for _, s := range sl.Items {
		if !isReady(s.Status.Conditions, s.Status.ObservedGeneration, s.Generation) {
			subs++
		}
	}
	return topics, subs, nil
}

func isReady(conds []metav1.Condition, observed, generation int64) bool {
	return observed == generation && meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady)
}

// scrape reads a Prometheus text exposition: samples by metric name, each
// with its labels.
func scrape(ctx context.Context, url string) (map[string][]promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseProm(resp.Body)
}

type promSample struct {
	labels map[string]string
	value  float64
}

func parseProm(r io.Reader) (map[string][]promSample, error) {
	out := map[string][]promSample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:sp], map[string]string{}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(name[i+1:], "}"), ",") {
				k, val, ok := strings.Cut(kv, "=")
				if ok {
					labels[k] = strings.Trim(val, `"`)
				}
			}
			name = name[:i]
		}
		out[name] = append(out[name], promSample{labels: labels, value: v})
	}
	return out, sc.Err()
}

func sumBy(ss []promSample, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		out[s.labels[label]] += s.value
	}
	return out
}

func total(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}

func perSec(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times on Linux.
const clockTick = 100

// cpuTime returns a process's user and system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick
}

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// childPID returns the pid of this process's child running command, or 0.
func childPID(command string) int {
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+2:])
		if s[open+1:end] == command && len(f) > 1 && f[1] == self {
			return pid
		}
	}
	return 0
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// repoRoot is the nearest directory upwards holding Herald's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/herald-dev/herald\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from within the Herald repository")
		}
		dir = parent
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}
