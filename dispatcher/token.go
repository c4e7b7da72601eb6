package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/herald-dev/herald/internal/auth"
)

// DispatcherServiceAccount is the ServiceAccount the dispatcher of Topic
// namespace/topic runs as, and the Sender its requests carry: <topic>-dispatcher.
func DispatcherServiceAccount(topic string) string { return topic + "-dispatcher" }

// authorize sets h's Authorization to a bearer token for audience from the
// dispatcher's token source, obtained within timeout. Without an audience,
// or without a token source, it sets nothing. A token that cannot be
// obtained is a failed attempt (result.noToken): the request is not sent.
func (r *subRunner) authorize(h http.Header, audience string, timeout time.Duration) *result {
	if audience == "" || r.d.tokens == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	ctx = auth.WithSender(ctx, auth.Sender{Namespace: r.ns, Name: DispatcherServiceAccount(r.topic)})
	tok, err := r.d.tokens.Token(ctx, audience)
	if err != nil {
		return &result{err: fmt.Errorf("no token for audience %s: %w", audience, err), noToken: true}
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return nil
}
