package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

func init() {
	commands["send"] = runSend
}

// sendConfig is herald send's command line.
type sendConfig struct {
	to, typ, source, id, subject, specVersion string
	contentType, data, dataFile               string
	token, tokenFile                          string
	at, after, priority                       string
	extensions                                stringList
	timeout                                   time.Duration
}

const sendUsage = `Usage: herald send --to URL --type TYPE --source SOURCE [flags]

Sends one CloudEvent in HTTP binary mode and prints the response status (and
body, if any). Exits non-zero unless the answer is 2xx.

Example:
  herald send --to http://127.0.0.1:8080/default/orders \
    --type com.example.order.created --source /cli --data '{"id":1}'

Delivered to the Subscriptions in ten minutes, or at a time:
  herald send --to http://127.0.0.1:8080/default/orders \
    --type com.example.order.reminder --source /cli --after PT10M
  herald send ... --at 2030-01-02T09:00:00Z

Ahead of a backlog, to Subscriptions with priority enabled:
  herald send --to http://127.0.0.1:8080/default/orders \
    --type com.example.order.cancelled --source /cli --priority high

To a Topic that authenticates producers, with a token for its audience
(kubectl get htopic orders -o jsonpath='{.status.address.audience}'):
  herald send --to http://orders-dispatcher.shop.svc/shop/orders \
    --token "$(kubectl create token checkout -n shop --audience AUDIENCE)" \
    --type com.example.order.created --source /cli

Flags:
`

func parseSendFlags(args []string, stderr io.Writer) (sendConfig, error) {
	var c sendConfig
	fs := flag.NewFlagSet("herald send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.to, "to", "", "URL to POST the event to (required)")
	fs.StringVar(&c.typ, "type", "", "the event's type attribute (required)")
	fs.StringVar(&c.source, "source", "", "the event's source attribute (required)")
	fs.StringVar(&c.id, "id", "", "the event's id attribute (default: a new UUID)")
	fs.StringVar(&c.subject, "subject", "", "the event's subject attribute")
	fs.StringVar(&c.specVersion, "specversion", "1.0", "CloudEvents spec version: 1.0 or 0.3")
	fs.StringVar(&c.data, "data", "", "the event's data")
	fs.StringVar(&c.dataFile, "data-file", "", "read the event's data from a file (- for stdin)")
	fs.StringVar(&c.contentType, "content-type", "", "datacontenttype of the data (default application/json when there is data)")
	fs.Var(&c.extensions, "H", "extension attribute as name=value; may repeat")
	fs.Var(&c.extensions, "extension", "same as -H")
	fs.StringVar(&c.at, "at", "", "deliver at this RFC 3339 time (sets the deliverat extension)")
	fs.StringVar(&c.after, "after", "", "deliver after this duration, ISO-8601 (PT10M) or Go (10m) (sets the deliverafter extension)")
	fs.StringVar(&c.priority, "priority", "", "high, normal or low (sets the priority extension; Subscriptions with priority deliver high events first)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	fs.StringVar(&c.token, "token", "", "bearer token sent as Authorization: Bearer, e.g. from kubectl create token SA --audience AUDIENCE")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the bearer token from a file, e.g. a projected ServiceAccount token")
	fs.Usage = func() {
		fmt.Fprint(stderr, sendUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--to", c.to}, {"--type", c.typ}, {"--source", c.source}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if c.data != "" && c.dataFile != "" {
		return c, errors.New("give --data or --data-file, not both")
	}
	if c.token != "" && c.tokenFile != "" {
		return c, errors.New("give --token or --token-file, not both")
	}
	if c.at != "" && c.after != "" {
		return c, errors.New("give --at or --after, not both")
	}
	if c.at != "" {
		if _, err := time.Parse(time.RFC3339Nano, c.at); err != nil {
			return c, fmt.Errorf("--at %q: want an RFC 3339 time such as 2030-01-02T09:00:00Z", c.at)
		}
	}
	if c.after != "" {
		if _, err := v1alpha1.Duration(c.after).Parse(); err != nil {
			return c, fmt.Errorf("--after: %w", err)
		}
	}
	if c.priority != "" {
		if _, err := plan.ParsePriority(c.priority); err != nil {
			return c, fmt.Errorf("--priority: %w", err)
		}
	}
	return c, nil
}

// buildEvent makes the CloudEvent c describes.
func (c *sendConfig) buildEvent(stdin io.Reader) (event.Event, error) {
	e := event.New(c.specVersion)
	if c.specVersion != event.CloudEventsVersionV1 && c.specVersion != event.CloudEventsVersionV03 {
		return e, fmt.Errorf("--specversion %q: want 1.0 or 0.3", c.specVersion)
	}
	id := c.id
	if id == "" {
		id = uuid.NewString()
	}
	e.SetID(id)
	e.SetType(c.typ)
	e.SetSource(c.source)
	if c.subject != "" {
		e.SetSubject(c.subject)
	}
	for _, x := range c.extensions {
		name, value, ok := strings.Cut(x, "=")
		if !ok {
			return e, fmt.Errorf("-H %q: want name=value", x)
		}
		if err := e.Context.SetExtension(strings.TrimPrefix(strings.ToLower(name), "ce-"), value); err != nil {
			return e, fmt.Errorf("-H %q: %w", x, err)
		}
	}
	for name, v := range map[string]string{ce.AttrDeliverAt: c.at, ce.AttrDeliverAfter: c.after, ce.AttrPriority: c.priority} {
		if v != "" {
			if err := e.Context.SetExtension(name, v); err != nil {
				return e, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	var data []byte
	switch {
	case c.dataFile == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return e, fmt.Errorf("read stdin: %w", err)
		}
		data = b
	case c.dataFile != "":
		b, err := os.ReadFile(c.dataFile)
		if err != nil {
			return e, err
		}
		data = b
	case c.data != "":
		data = []byte(c.data)
	}
	if data != nil {
		ct := c.contentType
		if ct == "" {
			ct = event.ApplicationJSON
		}
		e.SetDataContentType(ct)
		e.DataEncoded = data
	} else if c.contentType != "" {
		e.SetDataContentType(c.contentType)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// bearer returns the token c names, read from --token-file at each call
// (a projected token is rotated in place); "" when none is given.
func (c *sendConfig) bearer() (string, error) { return readBearer(c.token, c.tokenFile) }

// readBearer returns token, or the token in file when file is set.
func readBearer(token, file string) (string, error) {
	if file == "" {
		return token, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	return t, nil
}

// send POSTs e in binary mode to url, with token as bearer token unless
// empty, and returns the response status line and body.
func send(ctx context.Context, client *http.Client, url, token string, e event.Event) (int, string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if err := cehttp.WriteRequest(binding.WithForceBinary(ctx), binding.ToMessage(&e), req); err != nil {
		return 0, "", nil, err
	}
	ce.EncodeHeaders(req.Header) // sdk-go writes the values as they are
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Status, body, nil
}

func runSend(ctx context.Context, args []string) error {
	c, err := parseSendFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	e, err := c.buildEvent(os.Stdin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	token, err := c.bearer()
	if err != nil {
		return err
	}
	code, status, body, err := send(ctx, http.DefaultClient, c.to, token, e)
	if err != nil {
		return err
	}
	fmt.Printf("%s (id %s)\n", status, e.ID())
	if len(body) > 0 {
		fmt.Println(strings.TrimRight(string(body), "\n"))
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("%s answered %s", c.to, status)
	}
	return nil
}
