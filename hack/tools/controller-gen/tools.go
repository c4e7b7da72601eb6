//go:build tools

// Package tools pins controller-gen. The blank import is never compiled (the
// "tools" build tag is never set); it only makes `go mod tidy` record
// controller-gen's dependency closure in go.mod/go.sum, so the Makefile can
// build bin/controller-gen-<version> reproducibly from this directory.
package tools

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
