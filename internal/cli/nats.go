// Package cli holds what herald's commands share on their command line:
// flag sets that default to the environment, the NATS connection flags and
// options, and the data plane's GC tuning. Both the herald binary and the
// dispatcher's own binary use it, so their flags cannot drift apart.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// NATSConfig is how a command reaches NATS; the manager, the dispatcher
// and the terminal tools embed it so that they take the same flags and
// environment.
type NATSConfig struct {
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

// RegisterNATSFlags adds the --nats-* flags to fs, defaulting to the
// NATS_* environment variables read through getenv.
func (c *NATSConfig) RegisterNATSFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.NATSURL, "nats-url", getenv("NATS_URL"), "NATS server URLs, comma-separated ($NATS_URL)")
	c.RegisterNATSAuthFlags(fs, getenv)
}

// RegisterNATSAuthFlags adds the credential and TLS flags of NATS to fs.
func (c *NATSConfig) RegisterNATSAuthFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.NATSCreds, "nats-creds", getenv("NATS_CREDS"), "NATS credentials file ($NATS_CREDS)")
	fs.StringVar(&c.NATSUser, "nats-user", getenv("NATS_USER"), "NATS user, with --nats-password-file ($NATS_USER)")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", getenv("NATS_PASSWORD_FILE"), "file holding the NATS user's password ($NATS_PASSWORD_FILE)")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", getenv("NATS_TLS_CA"), "CA bundle for the NATS servers' certificates ($NATS_TLS_CA)")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", getenv("NATS_TLS_CERT"), "client certificate for NATS ($NATS_TLS_CERT)")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", getenv("NATS_TLS_KEY"), "client key for NATS ($NATS_TLS_KEY)")
}

// ValidateNATS reports what is missing or inconsistent.
func (c NATSConfig) ValidateNATS() []error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url (or NATS_URL) is required"))
	}
	return append(errs, c.ValidateNATSAuth()...)
}

// ValidateNATSAuth reports inconsistent credential and TLS flags.
func (c NATSConfig) ValidateNATSAuth() []error {
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

// NATSOptions connect as name, start even while NATS is unreachable and
// reconnect forever, with the configured credentials and TLS files; extra
// options follow.
func (c NATSConfig) NATSOptions(name string, extra ...nats.Option) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
	}
	return append(append(opts, c.NATSAuthOptions()...), extra...)
}

// NATSAuthOptions are the credential and TLS options of c.
func (c NATSConfig) NATSAuthOptions() []nats.Option {
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

// UnreadableNATSFiles reports the credential files of c that are missing.
func (c NATSConfig) UnreadableNATSFiles() []error {
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
