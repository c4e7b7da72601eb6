package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// natsConfig is how a subcommand reaches NATS; the manager and the
// dispatcher embed it so both take the same flags and environment.
type natsConfig struct {
	// NATSURL lists the servers, comma-separated.
	NATSURL string
	// NATSCreds is a credentials file; empty for none.
	NATSCreds string
	// NATSTLSCA is a CA bundle for the servers' certificates.
	NATSTLSCA string
	// NATSTLSCert and NATSTLSKey are a client certificate and its key.
	NATSTLSCert, NATSTLSKey string
}

// registerNATSFlags adds the --nats-* flags to fs, defaulting to the
// NATS_* environment variables read through getenv.
func (c *natsConfig) registerNATSFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.NATSURL, "nats-url", getenv("NATS_URL"), "NATS server URLs, comma-separated ($NATS_URL)")
	fs.StringVar(&c.NATSCreds, "nats-creds", getenv("NATS_CREDS"), "NATS credentials file ($NATS_CREDS)")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", getenv("NATS_TLS_CA"), "CA bundle for the NATS servers' certificates ($NATS_TLS_CA)")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", getenv("NATS_TLS_CERT"), "client certificate for NATS ($NATS_TLS_CERT)")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", getenv("NATS_TLS_KEY"), "client key for NATS ($NATS_TLS_KEY)")
}

// validateNATS reports what is missing or inconsistent.
func (c natsConfig) validateNATS() []error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url (or NATS_URL) is required"))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key go together"))
	}
	return errs
}

// natsOptions connect as name, start even while NATS is unreachable and
// reconnect forever, with the configured credentials and TLS files; extra
// options follow.
func (c natsConfig) natsOptions(name string, extra ...nats.Option) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
	}
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSTLSCA))
	}
	if c.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSTLSCert, c.NATSTLSKey))
	}
	return append(opts, extra...)
}

// newFlagSet returns a flag set for a subcommand that prints usage, then
// the flags, on -h.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// envDefault returns a lookup of name in getenv that falls back to def.
func envDefault(getenv func(string) string) func(name, def string) string {
	return func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
}

// splitList splits a comma-separated flag value, dropping blanks around and
// between the items; nil when there are none.
func splitList(s string) []string {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
