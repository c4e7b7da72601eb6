package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/herald-dev/herald/devmode"
	"github.com/herald-dev/herald/internal/logging"
)

func init() {
	commands["display"] = runDisplay
}

func runDisplay(ctx context.Context, args []string) error {
	listen, level, err := parseDisplayFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, logging.Text, level)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: devmode.NewDisplay(os.Stdout, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("display: printing the CloudEvents POSTed to http://" + ln.Addr().String() + "/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// parseDisplayFlags reads herald display's flags: the address to listen on
// and the log level.
func parseDisplayFlags(args []string) (listen string, level slog.Level, err error) {
	fs := flag.NewFlagSet("herald display", flag.ContinueOnError)
	fs.StringVar(&listen, "listen", "127.0.0.1:9000", "host:port to receive CloudEvents on")
	var logFlags logging.Flags
	logFlags.BindFlags(fs, nil)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: herald display [--listen host:port]\n\n"+
			"A CloudEvents sink: prints every event it receives (binary, structured or\n"+
			"batched mode) to stdout and answers 202 Accepted.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return "", 0, err
	}
	if fs.NArg() > 0 {
		return "", 0, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	level, err = logFlags.Level()
	return listen, level, err
}
