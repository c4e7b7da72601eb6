// Package natstest starts embedded NATS servers with JetStream for tests,
// one per test, on a random loopback port with a temporary store. It is
// for tests only: the herald binary must not link it.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/internal/natsserver"
)

// Start runs an embedded JetStream server for the test and shuts it down in
// t.Cleanup.
func Start(t testing.TB) *server.Server {
	t.Helper()
	s, err := natsserver.Run(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect connects to s and closes the connection in t.Cleanup.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
