package cli

import (
	"flag"
	"fmt"
	"strings"
)

// NewFlagSet returns a flag set for a command that prints usage, then
// the flags, on -h.
func NewFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// EnvDefault returns a lookup of name in getenv that falls back to def.
func EnvDefault(getenv func(string) string) func(name, def string) string {
	return func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
}

// SplitList splits a comma-separated flag value, dropping blanks around and
// between the items; nil when there are none.
func SplitList(s string) []string {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
