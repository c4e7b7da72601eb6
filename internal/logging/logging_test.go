package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

func TestParseLevel(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{in: "debug", want: slog.LevelDebug},
		{in: "info", want: slog.LevelInfo},
		{in: "warn", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "INFO", want: slog.LevelInfo},
		{in: "0", want: slog.LevelInfo},
		{in: "2", want: slog.Level(-2)},
		{in: "4", want: slog.LevelDebug},
		{in: "", wantErr: true},
		{in: "loud", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "info+2", wantErr: true},
		{in: "warning", wantErr: true},
	} {
		got, err := ParseLevel(tt.in)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--log-level") {
				t.Errorf("ParseLevel(%q) = %v, %v; want an error naming --log-level", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestBindFlags(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvLevel {
				return v
			}
			return ""
		}
	}
	for _, tt := range []struct {
		name    string
		getenv  func(string) string
		args    []string
		want    slog.Level
		wantErr bool
	}{
		{name: "default", want: slog.LevelInfo},
		{name: "no environment", getenv: nil, want: slog.LevelInfo},
		{name: "from environment", getenv: env("debug"), want: slog.LevelDebug},
		{name: "flag wins", getenv: env("debug"), args: []string{"--log-level", "error"}, want: slog.LevelError},
		{name: "bad environment", getenv: env("loud"), wantErr: true},
		{name: "bad flag", args: []string{"--log-level=loud"}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var f Flags
			f.BindFlags(fs, tt.getenv)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := f.Level()
			if tt.wantErr != (err != nil) || (err == nil && got != tt.want) {
				t.Errorf("Level() = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestLogrThroughHandler checks the manager's set-up: logr messages at V(n)
// pass a handler at level -n, Error is written under "error", and names
// become the "logger" attribute.
func TestLogrThroughHandler(t *testing.T) {
	var buf bytes.Buffer
	log := logr.FromSlogHandler(NewHandler(&buf, JSON, slog.LevelInfo)).WithName("controller")
	log.Info("shown")
	log.V(1).Info("hidden")
	log.Error(errors.New("boom"), "failed")
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("records %v, want shown and failed", recs)
	}
	if recs[0]["msg"] != "shown" || recs[0]["level"] != "INFO" || recs[0]["logger"] != "controller" {
		t.Errorf("info record %v", recs[0])
	}
	if recs[1]["msg"] != "failed" || recs[1]["level"] != "ERROR" || recs[1]["error"] != "boom" {
		t.Errorf("error record %v", recs[1])
	}

	buf.Reset()
	level, err := ParseLevel("1")
	if err != nil {
		t.Fatal(err)
	}
	log = logr.FromSlogHandler(NewHandler(&buf, Text, level))
	log.V(1).Info("verbose")
	log.V(2).Info("more verbose")
	if out := buf.String(); !strings.Contains(out, "msg=verbose") || strings.Contains(out, "more verbose") {
		t.Errorf("at verbosity 1: %q", out)
	}
}
