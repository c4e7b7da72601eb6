//go:build tools

// Package tools pins nats-server. The blank import is never compiled (the
// "tools" build tag is never set); it only makes `go mod tidy` record the
// server's dependency closure in go.mod/go.sum, so hack/cluster/build-bins.sh
// can build bin/cluster/nats-server-<version> reproducibly from this directory.
package tools

import (
	_ "github.com/nats-io/nats-server/v2"
)
