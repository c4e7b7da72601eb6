package provision

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// CatalogTTL is how long a type stays in the catalog after a dispatcher
// last saw it: the catalog shows what flows, and a Topic sent ever new
// types does not grow it without end.
const CatalogTTL = 30 * 24 * time.Hour

// CatalogBucketConfig is the bucket of the event types each Topic accepted
// (plan.CatalogBucket): one value per key, on file, like the plans, each
// key kept for CatalogTTL after its last update.
func CatalogBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      plan.CatalogBucket,
		Description: "Herald event type catalog, one key per Topic and type",
		History:     1,
		TTL:         CatalogTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// ReadCatalog returns the catalog entries of Topic namespace/topic in kv
// (plan.CatalogBucket), the latest seen first. It only reads, for tools
// that must not create what a Provisioner would.
func ReadCatalog(ctx context.Context, kv jetstream.KeyValue, namespace, topic string) ([]plan.CatalogEntry, error) {
	m, err := readCatalogs(ctx, kv, plan.CatalogKeys(namespace, topic))
	return m[namespace+"/"+topic], err
}

// readCatalogs returns the catalog entries of the keys filter matches, by
// "namespace/topic", the latest seen first.
func readCatalogs(ctx context.Context, kv jetstream.KeyValue, filter string) (map[string][]plan.CatalogEntry, error) {
	l, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list catalog: %w", err)
	}
	out := map[string][]plan.CatalogEntry{}
	for key := range l.Keys() {
		parts := strings.SplitN(key, ".", 3)
		if len(parts) != 3 {
			continue
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read catalog %s: %w", key, err)
		}
		var en plan.CatalogEntry
		if err := json.Unmarshal(e.Value(), &en); err != nil {
			continue
		}
		k := parts[0] + "/" + parts[1]
		out[k] = append(out[k], en)
	}
	for _, es := range out {
		slices.SortFunc(es, func(a, b plan.CatalogEntry) int {
			return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.Type, b.Type))
		})
	}
	return out, nil
}

// Catalogs returns every Topic's catalog entries, by "namespace/topic",
// the latest seen first.
func (p *Provisioner) Catalogs(ctx context.Context) (map[string][]plan.CatalogEntry, error) {
	kv, err := p.js.KeyValue(ctx, plan.CatalogBucket)
	if err != nil {
		return nil, fmt.Errorf("catalog bucket: %w", err)
	}
	return readCatalogs(ctx, kv, plan.CatalogKeys("*", "*"))
}

// Catalog returns the catalog entries of Topic namespace/topic, the latest
// seen first.
func (p *Provisioner) Catalog(ctx context.Context, namespace, topic string) ([]plan.CatalogEntry, error) {
	kv, err := p.js.KeyValue(ctx, plan.CatalogBucket)
	if err != nil {
		return nil, fmt.Errorf("catalog bucket: %w", err)
	}
	return ReadCatalog(ctx, kv, namespace, topic)
}

// purgeCatalog removes the catalog entries of a deleted Topic.
func (p *Provisioner) purgeCatalog(ctx context.Context, namespace, topic string) error {
	s, err := p.js.Stream(ctx, "KV_"+plan.CatalogBucket)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+plan.CatalogBucket+"."+plan.CatalogKeys(namespace, topic)))
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("purge catalog of %s/%s: %w", namespace, topic, err)
	}
	return nil
}
