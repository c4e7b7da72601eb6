package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/sources"
	"github.com/herald-dev/herald/sources/adapter"
)

func init() {
	commands["adapter"] = runAdapter
}

// runAdapter is `herald adapter`: it runs the ping, apiServer or webhook
// source the environment (or flags) describe; see package sources for the
// contract with the operator.
func runAdapter(ctx context.Context, args []string) error {
	cfg, err := sources.ParseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	log := logging.New(os.Stderr, logging.JSON, cfg.LogLevel)
	slog.SetDefault(log)
	return adapter.Run(ctx, cfg, log)
}
