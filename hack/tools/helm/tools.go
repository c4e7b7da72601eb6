//go:build tools

// Package tools pins helm. The blank import is never compiled (the "tools"
// build tag is never set); it only makes `go mod tidy` record helm's
// dependency closure in go.mod/go.sum, so the Makefile can build
// bin/helm-<version> reproducibly from this directory.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
