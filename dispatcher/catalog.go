package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// catalogMaxTypes bounds the event types one dispatcher remembers per Topic
// between two flushes; events of further types are not recorded.
const catalogMaxTypes = 256

// catalog is what a dispatcher saw of a Topic's event types since its last
// flush to plan.CatalogBucket. Recording takes a mutex and a map lookup per
// accepted event; flushing swaps the map.
type catalog struct {
	mu    sync.Mutex
	types map[string]*plan.CatalogEntry
}

// record notes an accepted event; a nil catalog records nothing.
func (c *catalog) record(e *ce.Event, now time.Time) {
	if c == nil {
		return
	}
	typ, _ := e.Get(ce.AttrType)
	src, _ := e.Get(ce.AttrSource)
	c.mu.Lock()
	defer c.mu.Unlock()
	en := c.types[typ]
	if en == nil {
		if len(c.types) >= catalogMaxTypes {
			return
		}
		if c.types == nil {
			c.types = map[string]*plan.CatalogEntry{}
		}
		en = &plan.CatalogEntry{Type: typ, SourcePattern: src, FirstSeen: now, DataContentType: e.ContentType}
		c.types[typ] = en
	}
	en.Count++
	en.LastSeen = now
	if en.SourcePattern != src {
		en.SourcePattern = plan.MergeSourcePattern(en.SourcePattern, src)
	}
}

// take returns what was recorded and starts afresh.
func (c *catalog) take() map[string]*plan.CatalogEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.types
	c.types = nil
	return t
}

// flushCatalogs merges what the dispatcher saw into plan.CatalogBucket every
// plan.CatalogFlush until ctx ends, and once more then. Entries that cannot
// be written (the bucket missing, NATS unreachable) are dropped: the catalog
// is an overview, not an account.
func (d *Dispatcher) flushCatalogs(ctx context.Context) {
	t := time.NewTicker(plan.CatalogFlush)
	defer t.Stop()
	var kv jetstream.KeyValue
	for {
		done := false
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if kv == nil {
			var err error
			if kv, err = d.js.KeyValue(fctx, plan.CatalogBucket); err != nil {
				d.log.Debug("catalog bucket unavailable", "bucket", plan.CatalogBucket, "error", err)
				kv = nil
			}
		}
		for _, m := range *d.topics.Load() {
			for _, ts := range m {
				seen := ts.catalog.take()
				if kv == nil {
					continue
				}
				for _, en := range seen {
					key := plan.CatalogKey(ts.plan.Namespace, ts.plan.Name, en.Type)
					if err := mergeCatalogEntry(fctx, kv, key, *en); err != nil {
						d.log.Debug("catalog entry not written", "key", key, "error", err)
					}
				}
			}
		}
		cancel()
		if done {
			return
		}
	}
}

// mergeCatalogEntry adds en to the entry at key with compare-and-set, so
// that the replicas' flushes add up.
func mergeCatalogEntry(ctx context.Context, kv jetstream.KeyValue, key string, en plan.CatalogEntry) error {
	for range 5 {
		cur, err := kv.Get(ctx, key)
		merged := en
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = cur.Revision()
			if err := json.Unmarshal(cur.Value(), &merged); err != nil {
				merged = en
			} else {
				merged.Merge(en)
			}
		}
		b, _ := json.Marshal(merged)
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil || !errors.Is(err, jetstream.ErrKeyExists) && !isWrongLastSequence(err) {
			return err
		}
	}
	return errors.New("too many concurrent updates")
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
