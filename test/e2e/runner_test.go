package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// runner stands in for a kubelet: it starts the processes that the herald
// Deployments the operator created describe (command, args and environment
// of the pod template), restarts them when they exit or their template
// changes, stops them when the Deployment goes, and writes the Deployment's
// status from the processes' readiness, as the Deployment controller would.
//
// Each pod slot (Deployment, replica index) keeps its ports across restarts,
// the way a Service address outlives its pods.
type runner struct {
	binDir  string // the image's binaries, by name
	image   string
	logDir  string
	k8s     client.Client
	kubecfg string

	mu   sync.Mutex
	pods map[string]*pod // by namespace/deployment/index
}

type pod struct {
	key         string
	template    string // hash of the pod template the process runs
	httpAddr    string
	metricsAddr string
	cmd         *exec.Cmd
	exited      chan struct{}
	restarts    int
	stopped     bool
}

func newRunner(binDir, image, logDir, kubeconfig string, k8s client.Client) *runner {
	return &runner{binDir: binDir, image: image, logDir: logDir, kubecfg: kubeconfig, k8s: k8s, pods: map[string]*pod{}}
}

// run reconciles every 200 ms until ctx is done, then stops every process.
func (r *runner) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		r.reconcile(ctx)
		select {
		case <-ctx.Done():
			r.stopAll()
			return
		case <-t.C:
		}
	}
}

func (r *runner) reconcile(ctx context.Context) {
	var list appsv1.DeploymentList
	if err := r.k8s.List(ctx, &list); err != nil {
		return
	}
	want := map[string]bool{}
	for i := range list.Items {
		d := &list.Items[i]
		if len(d.Spec.Template.Spec.Containers) == 0 || d.Spec.Template.Spec.Containers[0].Image != r.image {
			continue
		}
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		hash := templateHash(&d.Spec.Template)
		ready := 0
		for i := 0; i < replicas; i++ {
			key := fmt.Sprintf("%s/%s/%d", d.Namespace, d.Name, i)
			want[key] = true
			p := r.ensure(ctx, d, key, hash)
			if p != nil && p.ready() {
				ready++
			}
		}
		r.writeStatus(ctx, d, replicas, ready)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, p := range r.pods {
		if !want[key] {
			p.stop()
			delete(r.pods, key)
		}
	}
}

func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// ensure keeps one process running the current template in the slot.
func (r *runner) ensure(ctx context.Context, d *appsv1.Deployment, key, hash string) *pod {
	r.mu.Lock()
	p := r.pods[key]
	r.mu.Unlock()
	if p != nil && p.template != hash {
		p.stop()
	}
	if p != nil && p.template == hash && p.running() {
		return p
	}
	if p == nil {
		p = &pod{key: key, httpAddr: freeAddr(), metricsAddr: freeAddr()}
	} else if p.template == hash {
		p.restarts++
	}
	p.template = hash
	p.stopped = false
	if err := r.start(ctx, d, p); err != nil {
		fmt.Fprintf(os.Stderr, "runner: start %s: %v\n", key, err)
	}
	r.mu.Lock()
	r.pods[key] = p
	r.mu.Unlock()
	return p
}

func (r *runner) start(ctx context.Context, d *appsv1.Deployment, p *pod) error {
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Command) == 0 || strings.Contains(c.Command[0], "/") {
		return fmt.Errorf("command %q: want a binary of the image, found on its PATH", c.Command)
	}
	args := append(append([]string{}, c.Command[1:]...), c.Args...)
	args = append(args, "--listen="+p.httpAddr, "--metrics-listen="+p.metricsAddr)
	env := []string{"PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + r.kubecfg}
	for _, e := range c.Env {
		v, err := r.envValue(ctx, d, e)
		if err != nil {
			return err
		}
		env = append(env, e.Name+"="+v)
	}
	logf, err := os.OpenFile(filepath.Join(r.logDir, strings.ReplaceAll(p.key, "/", "_")+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(r.binDir, c.Command[0]), args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

func (r *runner) envValue(ctx context.Context, d *appsv1.Deployment, e corev1.EnvVar) (string, error) {
	ns := d.Namespace
	switch {
	case e.ValueFrom == nil:
		return e.Value, nil
	case e.ValueFrom.SecretKeyRef != nil:
		var s corev1.Secret
		ref := e.ValueFrom.SecretKeyRef
		if err := r.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &s); err != nil {
			return "", fmt.Errorf("env %s: %w", e.Name, err)
		}
		return string(s.Data[ref.Key]), nil
	case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
		return ns, nil
	case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.serviceAccountName":
		if sa := d.Spec.Template.Spec.ServiceAccountName; sa != "" {
			return sa, nil
		}
		return "default", nil
	}
	return "", fmt.Errorf("env %s: value source not supported by the e2e runner", e.Name)
}

func (p *pod) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *pod) ready() bool {
	if !p.running() {
		return false
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.metricsAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the process gracefully (SIGTERM, then SIGKILL after 10 s).
func (p *pod) stop() {
	if !p.running() {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (r *runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		p.stop()
	}
}

// kill ends the process of a slot abruptly, as a node failure or OOM kill
// would; the runner restarts it on its next pass.
func (r *runner) kill(namespace, deployment string, index int) error {
	r.mu.Lock()
	p := r.pods[fmt.Sprintf("%s/%s/%d", namespace, deployment, index)]
	r.mu.Unlock()
	if p == nil || !p.running() {
		return fmt.Errorf("no running process for %s/%s/%d", namespace, deployment, index)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// addr is the HTTP address of a slot, stable across restarts.
func (r *runner) addr(namespace, deployment string, index int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pods[fmt.Sprintf("%s/%s/%d", namespace, deployment, index)]; p != nil {
		return p.httpAddr
	}
	return ""
}

// logs returns the output of a slot's processes.
func (r *runner) logs(namespace, deployment string, index int) string {
	b, _ := os.ReadFile(filepath.Join(r.logDir, fmt.Sprintf("%s_%s_%d.log", namespace, deployment, index)))
	return string(b)
}

// writeStatus sets the Deployment status the way the Deployment controller
// would, so the operator sees Available dispatchers.
func (r *runner) writeStatus(ctx context.Context, d *appsv1.Deployment, replicas, ready int) {
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           int32(replicas),
		UpdatedReplicas:    int32(replicas),
		ReadyReplicas:      int32(ready),
		AvailableReplicas:  int32(ready),
	}
	if replicas > ready {
		st.UnavailableReplicas = int32(replicas - ready)
	}
	avail := corev1.ConditionFalse
	reason := "MinimumReplicasUnavailable"
	if ready >= replicas {
		avail, reason = corev1.ConditionTrue, "MinimumReplicasAvailable"
	}
	st.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentAvailable, Status: avail, Reason: reason,
		LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	old := d.Status
	if old.ObservedGeneration == st.ObservedGeneration && old.ReadyReplicas == st.ReadyReplicas &&
		old.Replicas == st.Replicas && len(old.Conditions) == 1 && old.Conditions[0].Status == avail {
		return
	}
	d.Status = st
	_ = r.k8s.Status().Update(ctx, d)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
