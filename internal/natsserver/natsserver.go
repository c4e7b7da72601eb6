// Package natsserver runs an embedded NATS server with JetStream, as herald
// dev and the test environments use it. The server listens on loopback by
// default and stores its data in a directory of the caller's choosing.
package natsserver

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds JetStream data. Required.
	StoreDir string
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; -1 (default when 0) picks a free port.
	Port int
	// MaxPayload is the largest message the server accepts; default 9 MiB so
	// Topics may raise maxEventSize to the API's maximum of 8 MiB and still
	// have room for the headers.
	MaxPayload int32
}

// Run starts an embedded JetStream server and waits until it accepts
// connections. The caller shuts it down.
func Run(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = -1
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 9 << 20
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "herald",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: o.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server not ready after 10s")
	}
	return s, nil
}
