// Package testenv starts what Herald's test suites run against: a real
// kube-apiserver and etcd (controller-runtime's envtest) with Herald's CRDs
// from config/crd/bases installed and, on request, an embedded NATS server
// with JetStream. A test package starts one Env in its TestMain and stops it
// after m.Run. It is for tests only: the herald binary must not link it.
package testenv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/internal/natsserver"
)

// module is the module path go.mod names at the repository's root.
const module = "github.com/herald-dev/herald"

// Options says what Start starts besides the kube-apiserver and etcd.
type Options struct {
	// NoCRDs leaves Herald's CRDs uninstalled, for a package that tests
	// against built-in resources only.
	NoCRDs bool
	// ExtraCRDDirs are further directories of CustomResourceDefinitions,
	// relative to the repository's root, installed with Herald's.
	ExtraCRDDirs []string
	// NATS starts an embedded NATS server with JetStream and connects to it.
	NATS bool
}

// Env is a running test environment. Its fields are set by Start and must
// not be changed.
type Env struct {
	// RepoRoot is the repository's top directory.
	RepoRoot string
	// AssetsDir holds kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS).
	AssetsDir string
	// Dir is a temporary directory Stop removes.
	Dir string
	// Config reaches the kube-apiserver as an administrator.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for Config, for
	// processes and kubectl.
	Kubeconfig string
	// ServiceAccountSigningKey is the PEM private key the kube-apiserver
	// signs ServiceAccount tokens with, for tests forging tokens the API
	// server's keys verify.
	ServiceAccountSigningKey string
	// Scheme holds client-go's types, apiextensions/v1 and Herald's API.
	Scheme *runtime.Scheme
	// Client is a client for Config with Scheme.
	Client client.Client
	// NATS, NATSConn and JetStream are the embedded server, a connection
	// to it and its JetStream context; nil unless Options.NATS.
	NATS      *server.Server
	NATSConn  *nats.Conn
	JetStream jetstream.JetStream

	env *envtest.Environment
}

// Start starts an environment. It parses the command-line flags if they
// are not yet parsed, and sets controller-runtime's logger: to stderr at
// debug with go test -v, else discarding. It finds kube-apiserver and etcd
// in $KUBEBUILDER_ASSETS, else in the newest bin/k8s/* directory that
// hack/envtest-assets.sh builds, and then sets $KUBEBUILDER_ASSETS to it.
// On an error, what was started is stopped.
func Start(o Options) (_ *Env, err error) {
	if !flag.Parsed() {
		flag.Parse()
	}
	h := slog.DiscardHandler
	if testing.Verbose() {
		h = logging.NewHandler(os.Stderr, logging.Text, slog.LevelDebug)
	}
	log.SetLogger(logr.FromSlogHandler(h))

	e := &Env{}
	if e.RepoRoot, err = RepoRoot(); err != nil {
		return nil, err
	}
	if e.AssetsDir, err = FindAssets(e.RepoRoot); err != nil {
		return nil, err
	}
	if e.Dir, err = os.MkdirTemp("", "herald-test-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Stop())
		}
	}()

	e.Scheme = runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(e.Scheme); err != nil {
			return nil, err
		}
	}
	var crds []string
	if !o.NoCRDs {
		crds = append(crds, filepath.Join(e.RepoRoot, "config", "crd", "bases"))
	}
	for _, d := range o.ExtraCRDDirs {
		crds = append(crds, filepath.Join(e.RepoRoot, d))
	}
	e.env = &envtest.Environment{
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: e.AssetsDir,
		Scheme:                e.Scheme,
	}
	if e.Config, err = e.env.Start(); err != nil {
		e.env = nil
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	e.ServiceAccountSigningKey = filepath.Join(e.env.ControlPlane.APIServer.CertDir, "sa-signer.key")
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, e.env.KubeConfig, 0o600); err != nil {
		return nil, err
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}

	if o.NATS {
		if e.NATS, err = natsserver.Run(natsserver.Options{StoreDir: filepath.Join(e.Dir, "nats")}); err != nil {
			return nil, err
		}
		if e.NATSConn, err = nats.Connect(e.NATS.ClientURL()); err != nil {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		if e.JetStream, err = jetstream.New(e.NATSConn); err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
	}
	return e, nil
}

// Stop stops what Start started and removes Dir.
func (e *Env) Stop() error {
	var errs []error
	if e.NATSConn != nil {
		e.NATSConn.Close()
	}
	if e.NATS != nil {
		e.NATS.Shutdown()
		e.NATS.WaitForShutdown()
	}
	if e.env != nil {
		if err := e.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop envtest: %w", err))
		}
	}
	if e.Dir != "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// RepoRoot returns the repository's top directory: the nearest directory,
// from the working directory (a test's package directory) upwards, whose
// go.mod declares Herald's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declares(b, module) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", module)
		}
		dir = parent
	}
}

// declares reports whether the go.mod content gomod declares module path.
func declares(gomod []byte, path string) bool {
	for _, line := range bytes.Split(gomod, []byte("\n")) {
		if f := bytes.Fields(line); len(f) == 2 && string(f[0]) == "module" && string(bytes.Trim(f[1], `"`)) == path {
			return true
		}
	}
	return false
}

// FindAssets returns $KUBEBUILDER_ASSETS, or else the newest directory
// hack/envtest-assets.sh built under root, which it exports.
func FindAssets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	found, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*", "kube-apiserver"))
	if len(found) == 0 {
		return "", errors.New("the tests need kube-apiserver, etcd and kubectl: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	sort.Strings(found)
	dir := filepath.Dir(found[len(found)-1])
	return dir, os.Setenv("KUBEBUILDER_ASSETS", dir)
}
