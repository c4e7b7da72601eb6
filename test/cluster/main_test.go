//go:build cluster

// Package cluster tests Herald end to end on a real Kubernetes cluster: the
// chart installed with Helm (operator and its bundled NATS), dispatchers run
// by the operator as Deployments, and subscribers that are real Deployments
// behind Services, addressed by Service ref and resolved through cluster DNS.
// Events are sent from the test process to the dispatcher Services'
// ClusterIPs, which the node's kube-proxy routes from the host.
//
// It runs under `make e2e-cluster` (hack/cluster/e2e.sh), which brings the
// local cluster up, builds and imports the images, installs the chart, runs
// this package with the build tag cluster, and takes the cluster down. The
// environment says where everything is:
//
//	KUBECONFIG        the cluster
//	KUBECTL, HELM     the binaries
//	HERALD_RELEASE    the Helm release (namespace HERALD_NAMESPACE)
//	HERALD_VALUES     the values file it was installed with
//	HERALD_UPGRADE_TAG  a second tag of the herald image, for the upgrade test
package cluster

import (
	"fmt"
	"os"
	"testing"
)

var env struct {
	kubeconfig, kubectl, helm string
	release, namespace        string
	values, chart             string
	upgradeTag                string
}

func TestMain(m *testing.M) {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	env.kubeconfig = os.Getenv("KUBECONFIG")
	env.kubectl = get("KUBECTL", "kubectl")
	env.helm = get("HELM", "helm")
	env.release = get("HERALD_RELEASE", "herald")
	env.namespace = get("HERALD_NAMESPACE", "herald-system")
	env.values = get("HERALD_VALUES", "../../hack/cluster/herald-values.yaml")
	env.chart = get("HERALD_CHART", "../../charts/herald")
	env.upgradeTag = os.Getenv("HERALD_UPGRADE_TAG")
	if env.kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "KUBECONFIG is not set: run these tests with `make e2e-cluster`")
		os.Exit(1)
	}
	os.Exit(m.Run())
}
