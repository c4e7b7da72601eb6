package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

func init() {
	commands["types"] = func(ctx context.Context, args []string) error {
		return runTypes(ctx, args, os.Getenv, os.Stdout)
	}
}

const typesUsage = `Usage: herald types [flags] [namespace/]topic

Prints the event types a Topic accepted, from the catalog its dispatchers
keep: type, source pattern, count, first and last seen, and the
datacontenttype of a sample, the latest seen first.

  herald types orders
  herald types shop/orders -o json

Flags:
`

// typesConfig is herald types' validated configuration.
type typesConfig struct {
	toolNATS
	Namespace, Topic string
	Output           string
}

func parseTypesConfig(args []string, getenv func(string) string) (typesConfig, error) {
	c := typesConfig{}
	fs := flag.NewFlagSet("types", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), typesUsage)
		fs.PrintDefaults()
	}
	c.registerToolNATS(fs, getenv)
	fs.StringVar(&c.Output, "output", "table", "table or json")
	fs.StringVar(&c.Output, "o", "table", "shorthand for --output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	if len(pos) != 1 {
		fs.Usage()
		return c, errors.New("name a Topic as [namespace/]topic")
	}
	if c.Namespace, c.Topic, err = parseRef(pos[0], "topic"); err != nil {
		return c, err
	}
	if c.Output != "table" && c.Output != "json" {
		return c, fmt.Errorf("--output %q: want table or json", c.Output)
	}
	return c, nil
}

func runTypes(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	c, err := parseTypesConfig(args, getenv)
	if err != nil {
		return err
	}
	nc, js, err := c.connect("herald types")
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, plan.CatalogBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("no event type catalog on this NATS (bucket %s): is Herald running there?", plan.CatalogBucket)
	}
	if err != nil {
		return fmt.Errorf("catalog bucket: %w", err)
	}
	entries, err := provision.ReadCatalog(ctx, kv, c.Namespace, c.Topic)
	if err != nil {
		return err
	}
	return printTypes(out, c.Output, entries)
}

// printTypes prints catalog entries as a table or a JSON array.
func printTypes(out io.Writer, format string, entries []plan.CatalogEntry) error {
	if format == "json" {
		if entries == nil {
			entries = []plan.CatalogEntry{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSOURCE\tCOUNT\tFIRST SEEN\tLAST SEEN\tCONTENT TYPE")
	for _, e := range entries {
		ct := e.DataContentType
		if ct == "" {
			ct = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", e.Type, e.SourcePattern, e.Count,
			e.FirstSeen.UTC().Format(time.RFC3339), e.LastSeen.UTC().Format(time.RFC3339), ct)
	}
	return tw.Flush()
}
