// Package e2e tests Herald end to end: a real kube-apiserver and etcd
// (envtest), the operator as a process (herald manager), an embedded NATS
// JetStream server, and a runner standing in for a kubelet that starts the
// dispatcher and adapter processes the operator's Deployments describe.
// Subscribers are local HTTP servers reached through uri subscriptions.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/testenv"
)

// image is the image name the operator puts in Deployments; the runner runs
// the freshly built binary for it.
const image = "herald:e2e"

var (
	k8s        client.Client
	js         jetstream.JetStream
	run        *runner
	kubeconfig string
	kubectlBin string
	workDir    string
)

func TestMain(m *testing.M) { os.Exit(setup(m)) }

func setup(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "herald-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	// The image's binaries, in the directory standing in for its PATH.
	binDir := filepath.Join(workDir, "bin")
	bin := filepath.Join(binDir, "herald")
	build := exec.Command("go", "build", "-o", binDir+"/", "../../cmd/herald", "../../cmd/herald-dispatcher")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		return 1
	}

	env, err := testenv.Start(testenv.Options{NATS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	k8s, js, kubeconfig = env.Client, env.JetStream, env.Kubeconfig
	kubectlBin = filepath.Join(env.AssetsDir, "kubectl")
	ns := env.NATS

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The operator, as a process with its own flags, like in its Deployment.
	healthAddr := freeAddr()
	mgrLog, err := os.Create(filepath.Join(workDir, "manager.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The suite's producers post without tokens and its dispatchers run
	// without a verifier, so its Topics are open: allow-all, explicitly.
	mgr := exec.Command(bin, "manager", "--nats-url", ns.ClientURL(), "--image", image,
		"--metrics-bind-address", "0", "--health-probe-bind-address", healthAddr,
		"--default-publish-policy=allow-all")
	mgr.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	if err := mgr.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start manager:", err)
		return 1
	}
	defer func() {
		_ = mgr.Process.Signal(os.Interrupt)
		_ = mgr.Wait()
	}()
	if err := waitHTTP("http://"+healthAddr+"/readyz", 60*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "manager not ready:", err)
		dump(mgrLog.Name())
		return 1
	}

	run = newRunner(binDir, image, workDir, kubeconfig, k8s)
	runDone := make(chan struct{})
	go func() { run.run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }()

	code := m.Run()
	if code != 0 {
		dump(mgrLog.Name())
	}
	return code
}

func waitHTTP(url string, timeout time.Duration) error {
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
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dump(path string) {
	b, _ := os.ReadFile(path)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	fmt.Fprintf(os.Stderr, "---- %s\n%s\n", filepath.Base(path), b)
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// kubectl runs the kubectl built next to kube-apiserver against the test
// cluster, with stdin when given.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = stringsReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}
