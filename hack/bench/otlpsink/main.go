// Command otlpsink is the trace collector of hack/bench/run.sh's traced
// variant: it accepts OTLP/HTTP exports (protobuf or JSON) on -listen, answers
// each with an empty success response as a collector does, and discards
// them, printing how many requests and bytes it took when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4318", "host:port to serve OTLP/HTTP on")
	flag.Parse()
	var requests, bytes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		bytes.Add(n)
		ct := r.Header.Get("Content-Type")
		if ct == "application/json" {
			w.Header().Set("Content-Type", ct)
			_, _ = io.WriteString(w, "{}")
			return
		}
		// An empty ExportTraceServiceResponse encodes as no bytes.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Addr: *listen, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
	fmt.Printf("otlpsink: %d export requests, %d bytes\n", requests.Load(), bytes.Load())
}
