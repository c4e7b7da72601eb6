package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a command's entry point with a context that SIGINT or SIGTERM
// cancels, and exits 1 when it fails, printing the error after name. A
// flag.ErrHelp (-h or --help: the flag set printed the usage already) is
// no failure. args is the command line after the program's name.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		// -h or --help: the usage was asked for and printed.
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
