//go:build tools

// Package tools pins CoreDNS. The blank import is never compiled (the "tools"
// build tag is never set); it only makes `go mod tidy` record CoreDNS's
// dependency closure in go.mod/go.sum, so hack/cluster/build-bins.sh can
// build bin/cluster/coredns-<version> reproducibly from this directory.
package tools

import (
	_ "github.com/coredns/coredns"
)
