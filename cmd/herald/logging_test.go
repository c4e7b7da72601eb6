package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/herald-dev/herald/internal/dispatchercmd"
	"github.com/herald-dev/herald/internal/logging"
	"github.com/herald-dev/herald/sources"
)

// TestLogLevelFlag checks that every subcommand that logs takes the same
// --log-level values, and that those reading the environment default to
// $HERALD_LOG_LEVEL.
func TestLogLevelFlag(t *testing.T) {
	base := map[string]string{"NATS_URL": "nats://n:4222", "HERALD_IMAGE": "herald:1",
		"K_SINK": "http://sink", "HERALD_SOURCE_TYPE": "ping", "HERALD_SOURCE_NAMESPACE": "ns", "HERALD_SOURCE_NAME": "p",
		"HERALD_SOURCE_SPEC": `{"schedule":"* * * * *"}`}
	envWith := func(level string) func(string) string {
		return func(k string) string {
			if k == logging.EnvLevel {
				return level
			}
			return base[k]
		}
	}
	type parser func(args []string, getenv func(string) string) (slog.Level, error)
	commands := map[string]struct {
		parse   parser
		readEnv bool
	}{
		"manager": {readEnv: true, parse: func(args []string, getenv func(string) string) (slog.Level, error) {
			c, err := parseManagerConfig(args, getenv)
			return c.LogLevel, err
		}},
		"dispatcher": {readEnv: true, parse: func(args []string, getenv func(string) string) (slog.Level, error) {
			c, err := dispatchercmd.ParseConfig(args, getenv)
			return c.LogLevel, err
		}},
		"adapter": {readEnv: true, parse: func(args []string, getenv func(string) string) (slog.Level, error) {
			c, err := sources.ParseConfig(args, getenv)
			return c.LogLevel, err
		}},
		"dev": {parse: func(args []string, _ func(string) string) (slog.Level, error) {
			_, o, err := parseDevFlags(append([]string{"-f", "d"}, args...), io.Discard)
			return o.level, err
		}},
		"display": {parse: func(args []string, _ func(string) string) (slog.Level, error) {
			_, level, err := parseDisplayFlags(args)
			return level, err
		}},
	}
	for name, cmd := range commands {
		t.Run(name, func(t *testing.T) {
			for value, want := range map[string]slog.Level{
				"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
				"0": slog.LevelInfo, "2": slog.Level(-2),
			} {
				got, err := cmd.parse([]string{"--log-level", value}, envWith(""))
				if err != nil || got != want {
					t.Errorf("--log-level %s: %v, %v; want %v", value, got, err, want)
				}
			}
			if got, err := cmd.parse(nil, envWith("")); err != nil || got != slog.LevelInfo {
				t.Errorf("default: %v, %v; want info", got, err)
			}
			if _, err := cmd.parse([]string{"--log-level", "loud"}, envWith("")); err == nil || !strings.Contains(err.Error(), "--log-level") {
				t.Errorf("--log-level loud: error %v, want one naming --log-level", err)
			}
			want := slog.LevelInfo
			if cmd.readEnv {
				want = slog.LevelDebug
			}
			if got, err := cmd.parse(nil, envWith("debug")); err != nil || got != want {
				t.Errorf("$%s=debug: %v, %v; want %v", logging.EnvLevel, got, err, want)
			}
		})
	}
}

// TestManagerLogger checks that controller-runtime's and client-go's logs
// go through the manager's handler, at its level.
func TestManagerLogger(t *testing.T) {
	var buf bytes.Buffer
	setManagerLogger(logging.NewHandler(&buf, logging.JSON, slog.LevelInfo))
	t.Cleanup(func() { setManagerLogger(slog.DiscardHandler) })

	ctrl.Log.WithName("controller-runtime").Info("Starting Controller", "controller", "topic")
	ctrl.Log.WithName("controller-runtime").V(1).Info("verbose detail")
	klog.InfoS("successfully acquired lease", "lease", "herald/herald-manager")
	klog.Flush()

	out := buf.String()
	for _, want := range []string{
		`"msg":"Starting Controller"`, `"logger":"controller-runtime"`, `"controller":"topic"`,
		`"msg":"successfully acquired lease"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("manager log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "verbose detail") {
		t.Errorf("V(1) message logged at info:\n%s", out)
	}
}
