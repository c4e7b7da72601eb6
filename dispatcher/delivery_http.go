package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/internal/ce"
)

// Bounds on what the dispatcher reads of a response.
const (
	// errorBodyLimit is how much of an error body is kept for the
	// dead-letter sink's knativeerrordata.
	errorBodyLimit = 1024
	// drainLimit is how much of an unused body is read so the connection
	// can be reused; longer bodies close it.
	drainLimit = 64 << 10
)

// result is the outcome of one POST.
type result struct {
	// status is the response status; 0 when there was no response.
	status int
	// err is the transport error when there was no response.
	err      error
	timedOut bool
	// retryAfter is the Retry-After header of the response.
	retryAfter string
	// body holds the first errorBodyLimit bytes of a non-2xx response.
	body []byte
	// reply is the CloudEvent of a 200 response, when asked for; replyErr
	// says why a response announcing one held no valid event.
	reply    *ce.Event
	replyErr error
	elapsed  time.Duration
	// noToken: the request was not sent because no bearer token for its
	// destination's audience could be obtained. Such a failure is Herald's
	// own, so it is retried without limit and never dead-letters or drops
	// the event.
	noToken bool
}

func (r *result) verdict() verdict {
	if r.err != nil {
		return verdictRetry
	}
	return classify(r.status)
}

func (r *result) codeClass() string { return codeClass(r.status, r.timedOut) }

// describe is a short human-readable outcome for logs.
func (r *result) describe() string {
	if r.err != nil {
		return r.err.Error()
	}
	return http.StatusText(r.status)
}

// deliveryHeader returns the HTTP headers of a binary-mode request carrying
// the stored message with headers h: its ce- attributes, Content-Type and
// trace context, values as stored (already percent-encoded).
func deliveryHeader(h nats.Header, extra int) http.Header {
	out := make(http.Header, len(h)+extra)
	for k, v := range h {
		if strings.HasPrefix(k, ce.HeaderPrefix) || k == ce.HeaderContentType || k == ce.HeaderTraceParent || k == ce.HeaderTraceState {
			out[k] = v
		}
	}
	return out
}

// preferReply is the Prefer header of deliveries to subscribers. It is
// shared by every request: net/http only reads header values.
var preferReply = []string{"reply"}

// subscriberHeader returns the HTTP headers of a delivery to a subscriber
// of the stored message with headers h.
func subscriberHeader(h nats.Header) http.Header {
	hdr := deliveryHeader(h, 1)
	hdr["Prefer"] = preferReply
	return hdr
}

// post sends data with headers h to uri through c (d's client when nil)
// within timeout. With replyLimit > 0 a 200 response announcing a
// CloudEvent is decoded into result.reply, reading at most replyLimit
// bytes of it.
func (d *Dispatcher) post(c *http.Client, uri string, h http.Header, data []byte, timeout time.Duration, replyLimit int) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(data))
	if err != nil {
		return result{err: err}
	}
	req.Header = h
	if c == nil {
		c = d.client
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{
			err:      err,
			timedOut: errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil,
			elapsed:  time.Since(start),
		}
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusOK && replyLimit > 0 && ce.IsCloudEvent(resp.Header):
		body, err := io.ReadAll(io.LimitReader(resp.Body, int64(replyLimit)+1))
		switch {
		case err != nil:
			res.replyErr = err
		case len(body) > replyLimit:
			res.replyErr = errors.New("reply larger than the Topic's maxEventSize")
		default:
			res.reply, res.replyErr = ce.DecodeMessage(resp.Header, body)
		}
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		res.body, _ = io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		res.retryAfter = resp.Header.Get("Retry-After")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	res.elapsed = time.Since(start)
	return res
}
