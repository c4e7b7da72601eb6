// Command herald is Herald's main binary. Its subcommands run the operator
// (manager), the data plane (dispatcher), event sources (adapter), the whole
// data plane on one machine (dev), and small tools (display, send). The
// data plane also ships alone as herald-dispatcher, which dispatcher Pods
// run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/herald-dev/herald/internal/cli"
)

// commands maps a subcommand name to its entry point. Each subcommand's file
// registers itself in init; an entry point parses its own flags from args
// (os.Args after the subcommand name) and returns when ctx is done or its
// work is finished.
var commands = map[string]func(ctx context.Context, args []string) error{}

func main() {
	cli.Main("herald", run)
}

// run runs the subcommand named by args[0] with the arguments after it.
func run(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) < 1 {
			return errors.New("missing subcommand")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage()
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	return cmd(ctx, args[1:])
}

// parseRef reads [namespace/]name naming a Topic (what "topic") or a
// Subscription (what "subscription"), the namespace defaulting to
// "default". Names with characters no Kubernetes name holds, among them
// NATS wildcards and, for Topics, '.', are refused.
func parseRef(arg, what string) (namespace, name string, err error) {
	namespace, name = "default", arg
	if ns, n, ok := strings.Cut(arg, "/"); ok {
		namespace, name = ns, n
	}
	bad := "/*> \t"
	if what == "topic" {
		bad += "."
	}
	if namespace == "" || name == "" || strings.ContainsAny(name, bad) || strings.ContainsAny(namespace, "./*> \t") {
		return "", "", fmt.Errorf("%q is not [namespace/]%s", arg, what)
	}
	return namespace, name, nil
}

// printJSON writes v to out as indented JSON, the -o json of the tools.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: herald <subcommand> [flags]")
	fmt.Fprintln(os.Stderr, "subcommands:")
	for _, n := range names {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
	fmt.Fprintln(os.Stderr, "run `herald <subcommand> -h` for its flags")
}
