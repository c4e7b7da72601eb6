package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/plan"
)

// herald dev's local token issuer.
const (
	// devIssuer is the iss claim of herald dev's tokens.
	devIssuer = "herald-dev"
	// devAuthDir is the issuer's directory inside the data directory.
	devAuthDir = "auth"
	// devDefaultSender is the subject of tokens herald dev's own senders
	// present when no Topic dispatcher is named.
	devDefaultSender = "system:serviceaccount:herald-dev:herald"
)

// devIssuerFor returns the local issuer whose key lives in dataDir.
func devIssuerFor(dataDir string) (*auth.LocalIssuer, error) {
	return auth.NewLocalIssuer(filepath.Join(dataDir, devAuthDir), devIssuer, devDefaultSender)
}

const devTokenUsage = `Usage: herald dev token [namespace/]serviceaccount (--topic [namespace/]name | --audience A) [flags]

Prints a token of herald dev's local issuer (the one of --data-dir, which
herald dev --auth verifies against) for the ServiceAccount named, as kubectl
create token does in a cluster. The namespace defaults to "default". Send it
as Authorization: Bearer <token>.

Flags:
`

// devToken runs herald dev token: args after "token".
func devToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald dev token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", ".herald", "herald dev's data directory, holding the issuer's key")
	topic := fs.String("topic", "", "[namespace/]name of the Topic the token is for (its audience)")
	audience := fs.String("audience", "", "audience of the token, instead of --topic")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	fs.Usage = func() {
		fmt.Fprint(stderr, devTokenUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after the ServiceAccount, as with kubectl.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("name one ServiceAccount: herald dev token [namespace/]serviceaccount")
	}
	ns, sa := splitDefaultNamespace(pos[0])
	if ns == "" || sa == "" || strings.Contains(sa, "/") {
		return fmt.Errorf("%q is not [namespace/]serviceaccount", pos[0])
	}
	aud := *audience
	switch {
	case *topic != "" && aud != "":
		return errors.New("--topic and --audience exclude each other")
	case *topic != "":
		tns, tname := splitDefaultNamespace(*topic)
		if tns == "" || tname == "" || strings.Contains(tname, "/") {
			return fmt.Errorf("--topic %q is not [namespace/]name", *topic)
		}
		aud = plan.TopicAudience(tns, tname)
	case aud == "":
		return errors.New("give --topic [namespace/]name or --audience")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	iss, err := devIssuerFor(*dataDir)
	if err != nil {
		return err
	}
	tok, err := iss.Mint(plan.ServiceAccountSubject(ns, sa), aud, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// splitDefaultNamespace splits [namespace/]name, the namespace defaulting
// to "default".
func splitDefaultNamespace(s string) (ns, name string) {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		return ns, name
	}
	return "default", s
}

// devAuthBanner is the line herald dev prints when authentication is on.
func devAuthBanner(dataDir string) string {
	return fmt.Sprintf("herald dev: authentication on, tokens of the local issuer %q (key in %s):\n"+
		"  herald dev token [namespace/]serviceaccount --topic <namespace>/<topic> --data-dir %s\n",
		devIssuer, filepath.Join(dataDir, devAuthDir), dataDir)
}
