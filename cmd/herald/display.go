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
)

func init() {
	commands["display"] = runDisplay
}

func runDisplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("herald display", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "host:port to receive CloudEvents on")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: herald display [--listen host:port]\n\n"+
			"A CloudEvents sink: prints every event it receives (binary, structured or\n"+
			"batched mode) to stdout and answers 202 Accepted.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *listen)
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
