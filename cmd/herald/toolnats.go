package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/cli"
)

// toolNATS is how a terminal tool (tail, deadletters) reaches NATS: herald
// dev's embedded server unless --nats-url or $NATS_URL names another, such
// as a cluster's NATS port-forwarded. Against the chart's bundled NATS the
// tools log in as the operator's user: they create consumers of their own.
type toolNATS struct {
	cli.NATSConfig
}

// registerToolNATS adds the --nats-* flags to fs.
func (c *toolNATS) registerToolNATS(fs *flag.FlagSet, getenv func(string) string) {
	url := getenv("NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&c.NATSURL, "nats-url", url, "NATS server URLs ($NATS_URL; default: herald dev's embedded server)")
	c.RegisterNATSAuthFlags(fs, getenv)
}

// connect connects as name and returns the connection and its JetStream.
func (c toolNATS) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	if err := errors.Join(append(c.ValidateNATSAuth(), c.UnreadableNATSFiles()...)...); err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{nats.Name(name)}, c.NATSAuthOptions()...)
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", c.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
