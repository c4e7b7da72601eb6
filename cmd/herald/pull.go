package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/herald-dev/herald/devmode"
)

func init() {
	commands["pull"] = func(ctx context.Context, args []string) error {
		c, err := parsePullConfig(args, os.Stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		return runPull(ctx, c, http.DefaultClient, os.Stdout)
	}
}

const pullUsage = `Usage: herald pull --topic TOPIC [flags] [namespace/]subscription

Pulls events of a pull Subscription (spec.mode: pull) from its Topic's
ingress and prints them like herald tail, each with its ackId and delivery
attempt. Without --ack or --nack the events come back after the
Subscription's ack deadline.

Example, against herald dev:
  herald pull --topic orders --max 10 --wait 5s --ack default/jobs

Flags:
`

// pullConfig is herald pull's validated command line.
type pullConfig struct {
	url, namespace, topic, subscription string
	max                                 int
	wait                                time.Duration
	ack, nack                           bool
	nackDelay                           string
	output                              string
	token, tokenFile                    string
	timeout                             time.Duration
}

func parsePullConfig(args []string, stderr io.Writer) (pullConfig, error) {
	var c pullConfig
	fs := flag.NewFlagSet("herald pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "base URL of the Topic's ingress (default: herald dev's)")
	fs.StringVar(&c.topic, "topic", "", "the Subscription's Topic (required)")
	fs.IntVar(&c.max, "max", 10, "most events to pull (1 to 1000)")
	fs.DurationVar(&c.wait, "wait", 10*time.Second, "how long to wait for a first event (at most 30s)")
	fs.BoolVar(&c.ack, "ack", false, "acknowledge the events after printing them")
	fs.BoolVar(&c.nack, "nack", false, "nack the events after printing them: they come back after --nack-delay")
	fs.StringVar(&c.nackDelay, "nack-delay", "", "delay of --nack, ISO-8601 or Go duration (default: the Subscription's backoff)")
	fs.StringVar(&c.output, "o", "text", "output: text, or json (the answer as the ingress sent it)")
	fs.StringVar(&c.token, "token", "", "bearer token sent as Authorization: Bearer")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the bearer token from a file, e.g. a projected ServiceAccount token")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for each answer on top of --wait")
	fs.Usage = func() {
		fmt.Fprint(stderr, pullUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 1 {
		return c, errors.New("name one Subscription as [namespace/]subscription")
	}
	var err error
	if c.namespace, c.subscription, err = parseRef(fs.Arg(0), "subscription"); err != nil {
		return c, err
	}
	switch {
	case c.topic == "":
		return c, errors.New("missing --topic")
	case c.max < 1 || c.max > 1000:
		return c, errors.New("--max must be between 1 and 1000")
	case c.wait < 0 || c.wait > 30*time.Second:
		return c, errors.New("--wait must be between 0 and 30s")
	case c.ack && c.nack:
		return c, errors.New("give --ack or --nack, not both")
	case c.nackDelay != "" && !c.nack:
		return c, errors.New("--nack-delay goes with --nack")
	case c.output != "text" && c.output != "json":
		return c, fmt.Errorf("-o %q: want text or json", c.output)
	case c.token != "" && c.tokenFile != "":
		return c, errors.New("give --token or --token-file, not both")
	}
	c.url = strings.TrimRight(c.url, "/")
	return c, nil
}

// pulledEvent is one event of a :pull answer.
type pulledEvent struct {
	AckID           string          `json:"ackId"`
	DeliveryAttempt int             `json:"deliveryAttempt"`
	Event           json.RawMessage `json:"event"`
}

// call POSTs body to the Subscription's verb and returns the answer's
// body; an answer other than 200 is an error quoting it.
func (c *pullConfig) call(ctx context.Context, client *http.Client, verb string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("%s/%s/%s/subscriptions/%s:%s", c.url, c.namespace, c.topic, c.subscription, verb)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	token, err := readBearer(c.token, c.tokenFile)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

func runPull(ctx context.Context, c pullConfig, client *http.Client, out io.Writer) error {
	pctx, cancel := context.WithTimeout(ctx, c.wait+c.timeout)
	defer cancel()
	body, err := c.call(pctx, client, "pull", map[string]any{"maxEvents": c.max, "waitSeconds": c.wait.Seconds()})
	if err != nil {
		return err
	}
	var resp struct {
		ReceivedEvents []pulledEvent `json:"receivedEvents"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("read the pull answer: %w", err)
	}
	if c.output == "json" {
		_, _ = out.Write(body)
	} else {
		for _, re := range resp.ReceivedEvents {
			var b strings.Builder
			fmt.Fprintf(&b, "ackId: %s\ndeliveryAttempt: %d\n", re.AckID, re.DeliveryAttempt)
			var e event.Event
			if err := json.Unmarshal(re.Event, &e); err != nil {
				fmt.Fprintf(&b, "(no CloudEvent: %v)\n%s\n", err, re.Event)
			} else {
				devmode.FormatEvent(&b, &e, "")
			}
			_, _ = io.WriteString(out, b.String())
		}
	}
	if len(resp.ReceivedEvents) == 0 || !c.ack && !c.nack {
		return nil
	}
	ids := make([]string, len(resp.ReceivedEvents))
	for i, re := range resp.ReceivedEvents {
		ids[i] = re.AckID
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.ack {
		_, err = c.call(actx, client, "ack", map[string]any{"ackIds": ids})
	} else {
		req := map[string]any{"ackIds": ids}
		if c.nackDelay != "" {
			req["delay"] = c.nackDelay
		}
		_, err = c.call(actx, client, "nack", req)
	}
	if err != nil {
		return err
	}
	if c.output == "text" {
		verb := "acknowledged"
		if c.nack {
			verb = "nacked"
		}
		fmt.Fprintf(out, "%s %d events\n", verb, len(ids))
	}
	return nil
}
