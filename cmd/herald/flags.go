package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsConfig is how a subcommand reaches NATS; the manager and the
// dispatcher embed it so both take the same flags and environment.
type natsConfig struct {
	// NATSURL lists the servers, comma-separated.
	NATSURL string
	// NATSCreds is a credentials file; empty for none.
	NATSCreds string
	// NATSUser and NATSPasswordFile log in with a user and the password
	// held in a file, read again on every (re)connect so that a rotated
	// password takes effect without a restart.
	NATSUser, NATSPasswordFile string
	// NATSTLSCA is a CA bundle for the servers' certificates.
	NATSTLSCA string
	// NATSTLSCert and NATSTLSKey are a client certificate and its key.
	NATSTLSCert, NATSTLSKey string
}

// registerNATSFlags adds the --nats-* flags to fs, defaulting to the
// NATS_* environment variables read through getenv.
func (c *natsConfig) registerNATSFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.NATSURL, "nats-url", getenv("NATS_URL"), "NATS server URLs, comma-separated ($NATS_URL)")
	c.registerNATSAuthFlags(fs, getenv)
}

// registerNATSAuthFlags adds the credential and TLS flags of NATS to fs.
func (c *natsConfig) registerNATSAuthFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.NATSCreds, "nats-creds", getenv("NATS_CREDS"), "NATS credentials file ($NATS_CREDS)")
	fs.StringVar(&c.NATSUser, "nats-user", getenv("NATS_USER"), "NATS user, with --nats-password-file ($NATS_USER)")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", getenv("NATS_PASSWORD_FILE"), "file holding the NATS user's password ($NATS_PASSWORD_FILE)")
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
	return append(errs, c.validateNATSAuth()...)
}

// validateNATSAuth reports inconsistent credential and TLS flags.
func (c natsConfig) validateNATSAuth() []error {
	var errs []error
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key go together"))
	}
	if (c.NATSUser == "") != (c.NATSPasswordFile == "") {
		errs = append(errs, errors.New("--nats-user and --nats-password-file go together"))
	}
	if c.NATSUser != "" && c.NATSCreds != "" {
		errs = append(errs, errors.New("--nats-creds and --nats-user exclude each other"))
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
	return append(append(opts, c.natsAuthOptions()...), extra...)
}

// natsAuthOptions are the credential and TLS options of c.
func (c natsConfig) natsAuthOptions() []nats.Option {
	var opts []nats.Option
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSUser != "" {
		user, file := c.NATSUser, c.NATSPasswordFile
		opts = append(opts, nats.UserInfoHandler(func() (string, string) {
			b, err := os.ReadFile(file)
			if err != nil {
				// The server refuses the empty password; the client
				// reports the refusal and retries.
				return user, ""
			}
			return user, strings.TrimRight(string(b), "\r\n")
		}))
	}
	if c.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSTLSCA))
	}
	if c.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSTLSCert, c.NATSTLSKey))
	}
	return opts
}

// unreadableNATSFiles reports the credential files of c that are missing.
func (c natsConfig) unreadableNATSFiles() []error {
	var errs []error
	for flag, f := range map[string]string{"--nats-password-file": c.NATSPasswordFile, "--nats-creds": c.NATSCreds} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	return errs
}

// toolNATS is how a terminal tool (tail, deadletters) reaches NATS: herald
// dev's embedded server unless --nats-url or $NATS_URL names another, such
// as a cluster's NATS port-forwarded. Against the chart's bundled NATS the
// tools log in as the operator's user: they create consumers of their own.
type toolNATS struct {
	natsConfig
}

// registerToolNATS adds the --nats-* flags to fs.
func (c *toolNATS) registerToolNATS(fs *flag.FlagSet, getenv func(string) string) {
	url := getenv("NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&c.NATSURL, "nats-url", url, "NATS server URLs ($NATS_URL; default: herald dev's embedded server)")
	c.registerNATSAuthFlags(fs, getenv)
}

// connect connects as name and returns the connection and its JetStream.
func (c toolNATS) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	if err := errors.Join(append(c.validateNATSAuth(), c.unreadableNATSFiles()...)...); err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{nats.Name(name)}, c.natsAuthOptions()...)
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
