//go:build cluster

package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// run runs a command and returns its combined output.
func run(stdin, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// kubectl runs kubectl against the cluster, with stdin when given.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := run(stdin, env.kubectl, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helm runs helm against the cluster.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run("", env.helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sinkYAML is the subscriber: a Deployment of test/cluster/subscriber behind
// the Service sink, under the restricted Pod Security Standard.
const sinkYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: sink, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: sink}}
  template:
    metadata: {labels: {app: sink}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: sink
        image: localhost/herald-cluster/subscriber:1.0
        imagePullPolicy: Never
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: sink, namespace: %[1]s}
spec:
  selector: {app: sink}
  ports: [{name: http, port: 80, targetPort: http}]
`

// sinkAuthYAML lets the subscriber of namespace %[1]s review tokens: its
// ServiceAccount sink is bound the ClusterRole system:auth-delegator
// (create tokenreviews and subjectaccessreviews).
const sinkAuthYAML = `apiVersion: v1
kind: ServiceAccount
metadata: {name: sink, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: herald-cluster-sink-%[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: sink, namespace: %[1]s}]
`

// requireTokens makes the fixture's subscriber authenticate Herald: it runs
// as ServiceAccount sink (sinkAuthYAML) with --audience audience and
// --subject the Topic's dispatcher, answering 401 (counted in
// sinkStats.Refused) to any request without such a token, and the
// Subscription's subscriber gets audience, so the dispatcher presents its
// token. It returns once the subscriber rolled out and the Subscription is
// Ready at its new generation; the dispatcher applies the plan
// milliseconds later.
func (f *fixture) requireTokens(t *testing.T, audience string) {
	t.Helper()
	kubectl(t, fmt.Sprintf(sinkAuthYAML, f.ns), "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = run("", env.kubectl, "delete", "clusterrolebinding", "herald-cluster-sink-"+f.ns, "--ignore-not-found")
	})
	subject := "system:serviceaccount:" + f.ns + ":" + f.dispatcher
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"serviceAccountName":"sink","containers":[{"name":"sink","args":["--audience=%s","--subject=%s"]}]}}}}`, audience, subject)
	kubectl(t, "", "-n", f.ns, "patch", "deployment/sink", "--type=strategic", "-p", patch)
	kubectl(t, "", "-n", f.ns, "rollout", "status", "deployment/sink", "--timeout=120s")
	kubectl(t, "", "-n", f.ns, "patch", "subscription/sink", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"subscriber":{"audience":%q}}}`, audience))
	eventually(t, 60*time.Second, "the Subscription to be Ready at its new generation", func() bool {
		out, err := run("", env.kubectl, "-n", f.ns, "get", "subscription/sink", "-o",
			`jsonpath={.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Ready")].status}`)
		var gen, observed int
		var ready string
		_, _ = fmt.Sscan(out, &gen, &observed, &ready)
		return err == nil && gen == observed && ready == "True"
	})
}

// topicYAML is a Topic with the given spec lines and a Subscription whose
// subscriber is the Service sink, by ref.
const topicYAML = `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  duplicateWindow: PT10M
%[3]s---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: %[4]s, namespace: %[1]s}
spec:
  topic: %[2]s
  subscriber:
    ref: {apiVersion: v1, kind: Service, name: sink}
  delivery:
    timeout: PT5S
    backoffDelay: PT0.1S
    backoffMax: PT2S
`

// fixture is a namespace with a subscriber and a Topic subscribed to it.
type fixture struct {
	ns, topic string
	// dispatcher is the Deployment and Service serving the Topic
	// (status.dispatcher.name): <topic>-dispatcher, or the namespace's
	// shared dispatcher.
	dispatcher string
	// ingress is http://<dispatcher ClusterIP>/<ns>/<topic>; follow
	// replaces it when the Topic moves to another dispatcher, as a producer
	// reading the Topic's address would.
	ingress  atomic.Pointer[string]
	sink     string // http://<sink ClusterIP>
	audience string // the Topic's status.address.audience
	// token is a token of the namespace's default ServiceAccount for
	// audience: the test process publishes as a producer of the Topic's
	// namespace, which the default publish policy admits.
	token string
}

// dedicated is the spec line of a Topic with a dispatcher of its own.
const dedicated = "  dispatcher: {mode: dedicated}\n"

// newFixture creates the namespace, the subscriber, the Topic (with extra
// spec lines, indented by two spaces) and the Subscription, and waits until
// the dispatcher and the subscriber are available. The Topic has a
// dedicated dispatcher unless spec says otherwise.
func newFixture(t *testing.T, ns, topic, spec string) *fixture {
	t.Helper()
	if !strings.Contains(spec, "dispatcher:") {
		spec = dedicated + spec
	}
	// A fresh namespace per run, so that -count=N (or another go test
	// against the same cluster) repeats a scenario.
	base := ns
	for i := 2; ; i++ {
		out, err := run("", env.kubectl, "create", "namespace", ns)
		if err == nil {
			break
		}
		if !strings.Contains(out, "AlreadyExists") || i > 100 {
			t.Fatal(err)
		}
		ns = fmt.Sprintf("%s-%d", base, i)
	}
	kubectl(t, fmt.Sprintf(sinkYAML, ns)+"---\n"+fmt.Sprintf(topicYAML, ns, topic, spec, "sink"), "apply", "-f", "-")
	kubectl(t, "", "-n", ns, "rollout", "status", "deployment/sink", "--timeout=120s")
	f := &fixture{ns: ns, topic: topic, sink: "http://" + clusterIP(t, ns, "sink")}
	f.ready(t, "sink")
	return f
}

// addTopic creates another Topic in f's namespace, with a Subscription
// named <topic>-sink to f's subscriber, and returns its fixture.
func (f *fixture) addTopic(t *testing.T, topic, spec string) *fixture {
	t.Helper()
	kubectl(t, fmt.Sprintf(topicYAML, f.ns, topic, spec, topic+"-sink"), "apply", "-f", "-")
	g := &fixture{ns: f.ns, topic: topic, sink: f.sink}
	g.ready(t, topic+"-sink")
	return g
}

// ready waits until the Topic and Subscription sub are Ready and the
// Topic's dispatcher and f's subscriber answer, and fills in the rest of f.
func (f *fixture) ready(t *testing.T, sub string) {
	t.Helper()
	ns, topic := f.ns, f.topic
	kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "topic/"+topic, "subscription/"+sub, "--timeout=120s")
	f.dispatcher = kubectl(t, "", "-n", ns, "get", "topic/"+topic, "-o", "jsonpath={.status.dispatcher.name}")
	kubectl(t, "", "-n", ns, "rollout", "status", "deployment/"+f.dispatcher, "--timeout=120s")
	uri := kubectl(t, "", "-n", ns, "get", "subscription/"+sub, "-o", "jsonpath={.status.subscriberUri}")
	if want := "http://sink." + ns + ".svc.cluster.local"; !strings.HasPrefix(uri, want) {
		t.Fatalf("subscriberUri %q, want the Service's cluster DNS name %s", uri, want)
	}
	f.setIngress(t)
	f.audience = kubectl(t, "", "-n", ns, "get", "topic/"+topic, "-o", "jsonpath={.status.address.audience}")
	if f.audience == "" {
		t.Fatalf("topic %s/%s has no status.address.audience", ns, topic)
	}
	f.token = createToken(t, ns, "default", f.audience)
	// kube-proxy programs a new Service's rules within a second or so; wait
	// for both ClusterIPs to answer before any figure is taken.
	// A GET is 405 from a dispatcher's ingress, 200 "ok" from the
	// subscriber's /healthz: anything else is another server.
	var ingressCode, sinkCode int
	eventually(t, 30*time.Second, "the dispatcher and subscriber Services to answer", func() bool {
		ingressCode, sinkCode = status(f.ingressURL()), status(f.sink+"/healthz")
		return ingressCode != 0 && sinkCode != 0
	})
	if ingressCode != http.StatusMethodNotAllowed || sinkCode != http.StatusOK {
		t.Fatalf("GET %s: %d (want 405 from the dispatcher), GET %s/healthz: %d (want 200 from the subscriber): the Services lead elsewhere\n%s",
			f.ingressURL(), ingressCode, f.sink, sinkCode, f.diagnostics())
	}
	t.Logf("%s/%s: dispatcher %s, ingress %s, subscriber %s (%s)", ns, topic, f.dispatcher, f.ingressURL(), uri, f.sink)
}

// dispatcherSelector selects the Pods of the Topic's dispatcher.
func (f *fixture) dispatcherSelector() string {
	if f.dispatcher == sharedDispatcher {
		return "eventing.herald.dev/shared-dispatcher=true"
	}
	return "eventing.herald.dev/topic=" + f.topic
}

func (f *fixture) ingressURL() string { return *f.ingress.Load() }

// setIngress points the fixture's ingress at the ClusterIP of the
// dispatcher Service status.address.url names.
func (f *fixture) setIngress(t *testing.T) {
	t.Helper()
	u := kubectl(t, "", "-n", f.ns, "get", "topic/"+f.topic, "-o", "jsonpath={.status.address.url}")
	host, _, _ := strings.Cut(strings.TrimPrefix(u, "http://"), ".")
	want := fmt.Sprintf("http://%s.%s.svc.cluster.local/%s/%s", host, f.ns, f.ns, f.topic)
	if u != want {
		t.Fatalf("topic %s/%s address %q, want %s", f.ns, f.topic, u, want)
	}
	ingress := "http://" + clusterIP(t, f.ns, host) + "/" + f.ns + "/" + f.topic
	f.ingress.Store(&ingress)
}

// createToken is a token of ServiceAccount ns/sa for audience, as
// `kubectl create token` makes it (through the TokenRequest API).
func createToken(t *testing.T, ns, sa, audience string) string {
	t.Helper()
	return strings.TrimSpace(kubectl(t, "", "-n", ns, "create", "token", sa, "--audience", audience, "--duration", "2h"))
}

// status is the status code of a GET of url, 0 when nothing answers (as
// while kube-proxy has not programmed a new Service yet).
func status(url string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStopped waits until nothing answers at url (a pod's own address) and
// returns how long that took.
func waitStopped(t *testing.T, url string) time.Duration {
	t.Helper()
	start := time.Now()
	c := &http.Client{Timeout: time.Second}
	eventually(t, 90*time.Second, "the pod to stop answering at "+url, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
	return time.Since(start)
}

func clusterIP(t *testing.T, ns, svc string) string {
	t.Helper()
	ip := kubectl(t, "", "-n", ns, "get", "service", svc, "-o", "jsonpath={.spec.clusterIP}")
	if ip == "" || ip == "None" {
		t.Fatalf("service %s/%s has no ClusterIP", ns, svc)
	}
	return ip
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
}

// sinkStats are the subscriber's counts; Refused counts the requests it
// answered 401 (see requireTokens).
type sinkStats struct{ Unique, Duplicates, Total, Refused int }

func (f *fixture) stats(t *testing.T) sinkStats {
	t.Helper()
	var s sinkStats
	if err := getJSON(f.sink+"/stats", &s); err != nil {
		t.Logf("subscriber stats: %v", err)
	}
	return s
}

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// load sends n events with distinct ids from several producers, each
// retrying an event until the ingress accepts it (202), as a producer does;
// a retried id is a duplicate Herald stores once.
type load struct {
	f         *fixture
	prefix    string
	n         int
	producers int
	base      sinkStats     // the subscriber's counts before the load
	every     time.Duration // pause of each producer after an accepted event

	accepted atomic.Int64
	retries  atomic.Int64
	mu       sync.Mutex
	failures map[string]int // status code or error kind → count
	first    string         // the first failure and its answer
	done     chan struct{}
	start    time.Time
	wall     time.Duration
	err      error
}

func startLoad(t *testing.T, f *fixture, prefix string, n, producers int) *load {
	return startPacedLoad(t, f, prefix, n, producers, 0)
}

// startPacedLoad is startLoad with each producer pausing for every after
// each accepted event, so that the load lasts about n/producers*every.
func startPacedLoad(t *testing.T, f *fixture, prefix string, n, producers int, every time.Duration) *load {
	l := &load{f: f, prefix: prefix, n: n, producers: producers, every: every, base: f.stats(t), failures: map[string]int{}, done: make(chan struct{}), start: time.Now()}
	var wg sync.WaitGroup
	var errOnce sync.Once
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := p; i < n; i += producers {
				if err := l.sendUntilAccepted(fmt.Sprintf("%s-%d", prefix, i)); err != nil {
					errOnce.Do(func() { l.err = err })
					return
				}
				time.Sleep(every)
			}
		}(p)
	}
	go func() { wg.Wait(); l.wall = time.Since(l.start); close(l.done) }()
	return l
}

func (l *load) sendUntilAccepted(id string) error {
	deadline := time.Now().Add(120 * time.Second)
	for {
		code, answer, err := send(l.f.ingressURL(), l.f.token, id)
		if code == http.StatusAccepted {
			l.accepted.Add(1)
			return nil
		}
		kind := fmt.Sprint(code)
		if err != nil {
			kind = "connection error"
		}
		l.mu.Lock()
		l.failures[kind]++
		if l.first == "" {
			l.first = fmt.Sprintf("%s at %v: %s", kind, time.Since(l.start).Round(time.Millisecond), answer)
		}
		l.mu.Unlock()
		l.retries.Add(1)
		if time.Now().After(deadline) {
			return fmt.Errorf("event %s not accepted within 120s: status %d, %s", id, code, answer)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for every producer to finish.
func (l *load) wait(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("producers did not finish in 5 minutes")
	}
	if l.err != nil {
		t.Fatalf("%v\n%s", l.err, l.f.diagnostics())
	}
}

// diagnostics are the Topic's pods and their recent logs, for a failure.
func (f *fixture) diagnostics() string {
	pods, _ := run("", env.kubectl, "-n", f.ns, "get", "pods,endpointslices,services", "-o", "wide")
	logs, _ := run("", env.kubectl, "-n", f.ns, "logs", "--tail=60", "--prefix", "--all-containers", "-l", f.dispatcherSelector())
	return "objects:\n" + pods + "dispatcher logs:\n" + logs
}

func (l *load) failureSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range l.failures {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// progress waits until the subscriber has received a fraction of the
// load's events; on a timeout it reports what the producers saw.
func (l *load) progress(t *testing.T, fraction float64, timeout time.Duration) {
	t.Helper()
	want := int(float64(l.n) * fraction)
	deadline := time.Now().Add(timeout)
	for {
		s := l.f.stats(t)
		if s.Unique-l.base.Unique >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered after %v, want %d; %d accepted, producer failures: %s (first answer: %s)\n%s",
				s.Unique-l.base.Unique, l.n, timeout, want, l.accepted.Load(), l.failureSummary(), l.firstFailure(), l.f.diagnostics())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (l *load) failureCount(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[kind]
}

func (l *load) firstFailure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// send POSTs one binary-mode CloudEvent, with token as bearer token, and
// returns the status code.
func send(url, token, id string) (code int, answer string, err error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(fmt.Sprintf(`{"id":%q}`, id))))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Type", "dev.herald.e2e.cluster")
	req.Header.Set("Ce-Source", "/e2e/cluster")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error(), err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// deliveredAll waits until the subscriber has every one of the load's
// events, and reports the scenario's figures. On a timeout it names missing
// ids and shows the dispatcher's logs.
func (l *load) deliveredAll(t *testing.T, scenario string, timeout time.Duration) sinkStats {
	t.Helper()
	l.wait(t)
	deadline := time.Now().Add(timeout)
	var s sinkStats
	for {
		s = l.f.stats(t)
		s.Unique -= l.base.Unique
		s.Duplicates -= l.base.Duplicates
		s.Total -= l.base.Total
		if s.Unique >= l.n {
			break
		}
		if time.Now().After(deadline) {
			var ids map[string]int
			_ = getJSON(l.f.sink+"/ids", &ids)
			var missing []string
			for i := 0; i < l.n && len(missing) < 10; i++ {
				if id := fmt.Sprintf("%s-%d", l.prefix, i); ids[id] == 0 {
					missing = append(missing, id)
				}
			}
			t.Fatalf("%s: %d of %d accepted events delivered after %v; missing e.g. %v\n%s",
				scenario, s.Unique, l.n, timeout, missing, l.f.diagnostics())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if s.Unique != l.n {
		t.Errorf("%s: subscriber saw %d distinct ids, sent %d", scenario, s.Unique, l.n)
	}
	t.Logf("FIGURES %s: sent %d, accepted %d, delivered %d, duplicates %d; producer retries %d (%s); send wall %v, delivered after %v",
		scenario, l.n, l.accepted.Load(), s.Unique, s.Duplicates, l.retries.Load(), l.failureSummary(),
		l.wall.Round(time.Millisecond), time.Since(l.start).Round(time.Millisecond))
	return s
}

// dispatcherPods lists the Topic's dispatcher pods that are not terminating.
func (f *fixture) dispatcherPods(t *testing.T) []string {
	t.Helper()
	out := kubectl(t, "", "-n", f.ns, "get", "pods", "-l", f.dispatcherSelector(),
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}`)
	var pods []string
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Fields(line); len(fields) == 1 {
			pods = append(pods, fields[0])
		}
	}
	return pods
}
