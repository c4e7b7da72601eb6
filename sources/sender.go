package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/ce"
)

// RetryPolicy bounds how a Sender retries one event. Zero fields take the
// defaults in parentheses.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included (5).
	MaxAttempts int
	// Backoff is the delay before the second attempt; it doubles per attempt (200ms).
	Backoff time.Duration
	// MaxBackoff caps the delay between attempts (10s).
	MaxBackoff time.Duration
	// RetryAfterMax caps a sink's Retry-After (60s).
	RetryAfterMax time.Duration
	// AttemptTimeout bounds one attempt (10s).
	AttemptTimeout time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Backoff <= 0 {
		p.Backoff = 200 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if p.RetryAfterMax <= 0 {
		p.RetryAfterMax = time.Minute
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = 10 * time.Second
	}
	return p
}

// delay is the capped exponential backoff before attempt n+1 (n ≥ 1), with
// jitter in [d/2, d], raised to retryAfter (itself capped by RetryAfterMax).
func (p RetryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	d := ce.Backoff(ce.Exponential, p.Backoff, p.MaxBackoff, n)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > 0 {
		d = max(d, min(retryAfter, p.RetryAfterMax))
	}
	return d
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Sink is the URL events are POSTed to.
	Sink string
	// Audience, when set, is the audience of the bearer token each request
	// carries, from Tokens; a token that cannot be obtained is a retried
	// failure and the request is not sent. Without Tokens none is sent.
	Audience string
	// Tokens supplies the tokens, asked on behalf of As.
	Tokens auth.TokenSource
	// As is the ServiceAccount the source sends as (auth.WithSender).
	As auth.Sender
	// Extensions are set on every message, replacing any value it had.
	Extensions map[string]string
	// Type labels the metrics.
	Type v1alpha1.EventSourceType
	// Retry bounds the attempts per event.
	Retry RetryPolicy
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
	// Metrics counts sends; nil counts into unregistered counters.
	Metrics *Metrics
	// Log receives retries and failures; nil means slog.Default().
	Log *slog.Logger
}

// Sender POSTs CloudEvents to a sink, retrying what ce.Retryable names
// (404, 408, 409, 429, 5xx, connection errors and timeouts, as the
// dispatcher does) with capped exponential backoff. It is safe for
// concurrent use.
type Sender struct {
	sink     string
	audience string
	tokens   auth.TokenSource
	as       auth.Sender
	ext      map[string]string
	typ      string
	retry    RetryPolicy
	client   *http.Client
	metrics  *Metrics
	log      *slog.Logger
}

// NewSender returns a Sender for cfg.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Sink == "" {
		return nil, errors.New("sender: no sink")
	}
	if err := ValidateExtensions(cfg.Extensions); err != nil {
		return nil, err
	}
	s := &Sender{
		sink:     cfg.Sink,
		audience: cfg.Audience,
		tokens:   cfg.Tokens,
		as:       cfg.As,
		ext:      cfg.Extensions,
		typ:      string(cfg.Type),
		retry:    cfg.Retry.withDefaults(),
		client:   cfg.Client,
		metrics:  cfg.Metrics,
		log:      cfg.Log,
	}
	if s.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		s.client = &http.Client{Transport: t}
	}
	if s.metrics == nil {
		s.metrics, _ = NewMetrics(nil)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// SendError is why a Sender gave up on an event.
type SendError struct {
	// StatusCode is the sink's last HTTP status; 0 when there was no response.
	StatusCode int
	// Attempts is the number of attempts made.
	Attempts int
	// Retryable is true when the last failure was one a later try may not
	// have (404, 408, 409, 429, 5xx, a connection error, a timeout): the
	// sink is not ready, down or overloaded, not refusing the event.
	Retryable bool
	// RetryAfter is the sink's last Retry-After; 0 when it sent none.
	RetryAfter time.Duration
	// Body is the start of the sink's last response body.
	Body string
	// Err is the last transport error, if any.
	Err error
}

func (e *SendError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("send to sink failed after %d attempts: %v", e.Attempts, e.Err)
	}
	if e.Body != "" {
		return fmt.Sprintf("sink answered %d after %d attempts: %s", e.StatusCode, e.Attempts, e.Body)
	}
	return fmt.Sprintf("sink answered %d after %d attempts", e.StatusCode, e.Attempts)
}

func (e *SendError) Unwrap() error { return e.Err }

// Send encodes e in binary mode, applies the extensions and sends it. A
// failure to send is a *SendError.
func (s *Sender) Send(ctx context.Context, e event.Event) error {
	m, err := EncodeBinary(e)
	if err != nil {
		s.metrics.failed.WithLabelValues(s.typ).Inc()
		return err
	}
	return s.SendMessage(ctx, m)
}

// SendMessage applies the extensions to m and POSTs it until the sink
// answers 2xx, answers a status that is not retried, MaxAttempts is
// reached, or ctx ends. A failure to send is a *SendError.
func (s *Sender) SendMessage(ctx context.Context, m Message) error {
	m, err := withExtensions(m, s.ext)
	if err != nil {
		s.metrics.failed.WithLabelValues(s.typ).Inc()
		return fmt.Errorf("apply ceOverrides: %w", err)
	}
	var last *SendError
	for n := 1; ; n++ {
		last = s.attempt(ctx, m)
		last.Attempts = n
		if last.StatusCode >= 200 && last.StatusCode < 300 {
			s.metrics.sent.WithLabelValues(s.typ).Inc()
			return nil
		}
		if !last.Retryable || n >= s.retry.MaxAttempts || ctx.Err() != nil {
			break
		}
		d := s.retry.delay(n, last.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			break
		}
		s.log.Debug("retrying send", "sink", s.sink, "attempt", n, "delay", d, "error", last.Error())
		s.metrics.retries.WithLabelValues(s.typ).Inc()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			if last.Err == nil {
				last.Err = ctx.Err()
			}
			break
		}
	}
	s.metrics.failed.WithLabelValues(s.typ).Inc()
	s.log.Warn("event not sent", "sink", s.sink, "id", m.Header.Get("Ce-Id"), "error", last.Error())
	return last
}

// attempt POSTs m once. The result's StatusCode is 2xx on success.
func (s *Sender) attempt(ctx context.Context, m Message) *SendError {
	actx, cancel := context.WithTimeout(ctx, s.retry.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.sink, bytes.NewReader(m.Body))
	if err != nil {
		return &SendError{Err: err}
	}
	for k, vs := range m.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if s.audience != "" && s.tokens != nil {
		tok, err := s.tokens.Token(auth.WithSender(actx, s.as), s.audience)
		if err != nil {
			return &SendError{Err: fmt.Errorf("no token for audience %s: %w", s.audience, err), Retryable: true}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// Connection errors and timeouts are retried; a cancelled ctx ends
		// the loop in SendMessage.
		return &SendError{Err: err, Retryable: true}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res := &SendError{StatusCode: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	res.Body = string(bytes.TrimSpace(body))
	res.RetryAfter, _ = ce.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	res.Retryable = ce.Retryable(resp.StatusCode)
	return res
}
