// Command herald is Herald's single binary. Its subcommands run the operator
// (manager), the data plane (dispatcher), event sources (adapter), the whole
// data plane on one machine (dev), and small tools (display, send).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// commands maps a subcommand name to its entry point. Each subcommand's file
// registers itself in init; an entry point parses its own flags from args
// (os.Args after the subcommand name) and returns when ctx is done or its
// work is finished.
var commands = map[string]func(ctx context.Context, args []string) error{}

func main() {
	if err := run(); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "herald:", err)
		}
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			return errors.New("missing subcommand")
		}
		return nil
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		usage()
		return fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd(ctx, os.Args[2:])
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
