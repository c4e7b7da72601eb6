// Package logging holds the logging flags every herald subcommand takes and
// the slog handlers they log through, so that the operator, the data plane
// and herald dev accept the same --log-level values and write the same
// record shape.
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// EnvLevel is the environment variable that, when set, is the default of
// --log-level for the subcommands that read the environment.
const EnvLevel = "HERALD_LOG_LEVEL"

// LevelValues describes the values --log-level accepts.
const LevelValues = "debug, info, warn or error, or a verbosity number n >= 0 (0 is info, 4 is debug)"

// ParseLevel maps a --log-level value to a slog level: debug, info, warn
// and error (in any case) to their slog levels, and a verbosity number n to
// slog.Level(-n), which is also how controller-runtime's V(n) messages map
// to slog levels. The error names the flag and the accepted values.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
		return slog.Level(-n), nil
	}
	return 0, fmt.Errorf("--log-level %q: want %s", s, LevelValues)
}

// Flags are the logging flags of one subcommand.
type Flags struct {
	level string
}

// BindFlags registers --log-level on fs. Its default is getenv(EnvLevel)
// when getenv is not nil and that is not empty, else info; the value is
// checked by Level.
func (f *Flags) BindFlags(fs *flag.FlagSet, getenv func(string) string) {
	def, usage := "info", "log level: "+LevelValues
	if getenv != nil {
		if v := getenv(EnvLevel); v != "" {
			def = v
		}
		usage += " ($" + EnvLevel + ")"
	}
	fs.StringVar(&f.level, "log-level", def, usage)
}

// Level returns the parsed --log-level, or an error naming the flag and
// the accepted values. Call it after the flag set is parsed.
func (f *Flags) Level() (slog.Level, error) {
	return ParseLevel(f.level)
}

// Format is how records are written.
type Format int

const (
	// JSON writes one JSON object per record, for log collectors: the
	// operator, dispatchers and adapters.
	JSON Format = iota
	// Text writes key=value lines, for a terminal: herald dev and display.
	Text
)

// NewHandler returns a handler writing records at level and above to w in
// format. An error attribute is written under the key "error" whether it
// was logged as "error" or, as logr's Error does, as "err".
func NewHandler(w io.Writer, format Format, level slog.Leveler) slog.Handler {
	o := &slog.HandlerOptions{Level: level, ReplaceAttr: renameErr}
	if format == Text {
		return slog.NewTextHandler(w, o)
	}
	return slog.NewJSONHandler(w, o)
}

// New returns a logger for NewHandler(w, format, level).
func New(w io.Writer, format Format, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(w, format, level))
}

func renameErr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == "err" {
		a.Key = "error"
	}
	return a
}
