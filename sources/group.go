package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Group runs a changing set of ping and webhook sources in one process, for
// herald dev. Webhooks do not listen themselves: Handler routes
// /<namespace>/<name> (and any path below it) to the webhook of that
// EventSource. Group is safe for concurrent use.
type Group struct {
	opts    Options
	mu      sync.Mutex
	members map[string]*member
}

type member struct {
	fingerprint string
	webhook     *Webhook
	cancel      context.CancelFunc
	done        chan struct{}
}

// NewGroup returns an empty Group whose sources use opts.
func NewGroup(opts Options) *Group {
	return &Group{opts: opts, members: map[string]*member{}}
}

// WebhookPath is where Group.Handler serves the webhook namespace/name.
func WebhookPath(namespace, name string) string {
	return "/" + namespace + "/" + name
}

// Sync makes the Group run exactly the sources of want: it starts new ones,
// restarts changed ones and stops the others. A source that cannot run (an
// invalid spec, or a type other than ping and webhook) is not started; its
// error is in the result, keyed namespace/name. The sources run until a
// later Sync drops them or Stop; ctx only carries values.
func (g *Group) Sync(ctx context.Context, want []Config) map[string]error {
	g.mu.Lock()
	defer g.mu.Unlock()
	errs := map[string]error{}
	keep := map[string]bool{}
	for _, cfg := range want {
		key := cfg.Namespace + "/" + cfg.Name
		keep[key] = true
		fp, err := json.Marshal(cfg)
		if err != nil {
			errs[key] = err
			continue
		}
		if m, ok := g.members[key]; ok {
			if m.fingerprint == string(fp) {
				continue
			}
			m.stop()
			delete(g.members, key)
		}
		m, err := g.start(ctx, cfg)
		if err != nil {
			errs[key] = err
			continue
		}
		m.fingerprint = string(fp)
		g.members[key] = m
	}
	for key, m := range g.members {
		if !keep[key] {
			m.stop()
			delete(g.members, key)
		}
	}
	return errs
}

func (g *Group) start(ctx context.Context, cfg Config) (*member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		r   Runner
		m   = &member{done: make(chan struct{})}
		err error
	)
	switch cfg.Type {
	case v1alpha1.EventSourceTypePing:
		r, err = NewPing(cfg, g.opts)
	case v1alpha1.EventSourceTypeWebhook:
		m.webhook, err = NewWebhook(cfg, g.opts)
	default:
		err = fmt.Errorf("%s sources do not run in-process", cfg.Type)
	}
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	if r == nil {
		close(m.done)
		return m, nil
	}
	go func() {
		defer close(m.done)
		if err := r.Run(rctx); err != nil {
			g.opts.logger().Error("source stopped", "eventsource", cfg.Namespace+"/"+cfg.Name, "error", err)
		}
	}()
	return m, nil
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

// Running lists the namespace/name of every running source, sorted.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.members))
	for k := range g.members {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Stop stops every source and waits for them.
func (g *Group) Stop() {
	g.Sync(context.Background(), nil)
}

// Handler serves the Group's webhooks at WebhookPath(namespace, name).
func (g *Group) Handler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
		if len(parts) < 2 {
			http.NotFound(rw, r)
			return
		}
		g.mu.Lock()
		m := g.members[parts[0]+"/"+parts[1]]
		g.mu.Unlock()
		if m == nil || m.webhook == nil {
			http.Error(rw, "no webhook EventSource "+parts[0]+"/"+parts[1], http.StatusNotFound)
			return
		}
		m.webhook.ServeHTTP(rw, r)
	})
}
