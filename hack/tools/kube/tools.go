//go:build tools

// Package tools pins the Kubernetes commands built from this module.
//
// The blank imports are never compiled (the "tools" build tag is never set);
// they only make `go mod tidy` record the full dependency closure of each
// command in go.mod/go.sum, so `go build k8s.io/kubernetes/cmd/<name>` from
// this directory is reproducible. See hack/envtest-assets.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
