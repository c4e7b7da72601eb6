package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/contract"
	"github.com/herald-dev/herald/plan"
)

// watch applies the plans of the served keys until ctx is done or the
// watcher ends: the keys of Options.Topics, every key of a shared
// dispatcher's namespace, or all. Topics not served by the initial values
// (their keys gone while no watcher ran, or, for a shared dispatcher, their
// plans naming another dispatcher now) are removed once those are in.
func (d *Dispatcher) watch(ctx context.Context, kv jetstream.KeyValue) error {
	var (
		w   jetstream.KeyWatcher
		err error
	)
	switch {
	case d.shared != "":
		w, err = kv.WatchFiltered(ctx, []string{plan.NamespaceKeys(d.sharedNS)})
	case d.served == nil:
		w, err = kv.WatchAll(ctx)
	default:
		keys := make([]string, 0, len(d.served))
		for k := range d.served {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w, err = kv.WatchFiltered(ctx, keys)
	}
	if err != nil {
		return fmt.Errorf("watch plans: %w", err)
	}
	defer func() { _ = w.Stop() }()
	initial := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("plan watcher closed")
			}
			if e == nil {
				if initial != nil {
					d.dropUnseen(initial)
					initial = nil
				}
				if !d.loaded.Swap(true) {
					d.log.Info("dispatch plans loaded", "topics", d.topicCount())
				}
				continue
			}
			if served := d.apply(e); served && initial != nil {
				initial[e.Key()] = true
			}
		}
	}
}

func (d *Dispatcher) topicCount() int {
	n := 0
	for _, m := range *d.topics.Load() {
		n += len(m)
	}
	return n
}

// dropUnseen removes Topics whose plan key is not in seen.
func (d *Dispatcher) dropUnseen(seen map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ns, m := range *d.topics.Load() {
		for name, ts := range m {
			if !seen[ts.key] {
				d.log.Info("topic plan gone", "topic", ns+"/"+name)
				d.setTopic(ns, name, nil)
				d.syncRunners(ts.key, nil)
			}
		}
	}
	d.pruneClients()
}

// apply takes one plan entry into effect and reports whether the
// dispatcher serves the entry's Topic afterwards. An invalid plan is logged
// and the Topic keeps running on its previous plan. A shared dispatcher
// drops a Topic whose plan names another dispatcher (or none) as if the
// plan were deleted.
func (d *Dispatcher) apply(e jetstream.KeyValueEntry) bool {
	key := e.Key()
	if d.served != nil && !d.served[key] {
		return false
	}
	ns, name, _ := strings.Cut(key, ".")
	d.mu.Lock()
	defer d.mu.Unlock()
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		d.drop(ns, name, "topic plan deleted")
		return false
	}
	p := new(plan.TopicPlan)
	if err := json.Unmarshal(e.Value(), p); err != nil {
		d.log.Error("ignoring unreadable plan", "key", key, "revision", e.Revision(), "error", err)
		return d.topic(ns, name) != nil
	}
	if d.shared != "" && p.SharedDispatcher != d.shared {
		d.drop(ns, name, "topic plan names another dispatcher", "sharedDispatcher", p.SharedDispatcher, "revision", e.Revision())
		return false
	}
	if err := p.Validate(); err != nil {
		d.log.Error("ignoring invalid plan", "key", key, "revision", e.Revision(), "error", err)
		return d.topic(ns, name) != nil
	}
	if plan.Key(p.Namespace, p.Name) != key {
		d.log.Error("ignoring plan stored under another Topic's key", "key", key, "topic", p.Namespace+"/"+p.Name)
		return d.topic(ns, name) != nil
	}
	ts := &topicState{plan: p, key: key}
	var err error
	if p.Contract != nil {
		// The compiler compiled the same schemas before publishing the
		// plan; failing here means a dispatcher of another version.
		if ts.contract, err = contract.Compile(p.Contract); err != nil {
			d.log.Error("ignoring plan whose contract does not compile", "key", key, "revision", e.Revision(), "error", err)
			return d.topic(ns, name) != nil
		}
	}
	if ts.publish, err = compilePublishPolicy(p); err != nil {
		d.log.Error("publish rules admit nothing where their filters do not compile", "topic", p.Namespace+"/"+p.Name, "error", err)
	}
	if old := d.topic(p.Namespace, p.Name); old != nil {
		ts.metrics, ts.pending, ts.contractLog, ts.catalog = old.metrics, old.pending, old.contractLog, old.catalog
	} else {
		ts.metrics, ts.pending = d.metrics.forTopic(p.Namespace, p.Name), new(atomic.Int64)
		ts.contractLog, ts.catalog = &sampler{period: contractLogPeriod}, &catalog{}
	}
	d.setTopic(p.Namespace, p.Name, ts)
	d.log.Info("topic plan applied", "topic", p.Namespace+"/"+p.Name, "revision", e.Revision(), "subscriptions", len(p.Subscriptions))
	d.syncRunners(key, p)
	d.pruneClients()
	return true
}

// drop stops serving Topic ns/name, if served, logging why: its ingress
// answers as for an unknown Topic and its delivery loops stop. d.mu must be
// held.
func (d *Dispatcher) drop(ns, name, why string, args ...any) {
	if d.topic(ns, name) == nil {
		return
	}
	d.log.Info(why, append([]any{"topic", ns + "/" + name}, args...)...)
	d.setTopic(ns, name, nil)
	d.syncRunners(plan.Key(ns, name), nil)
	d.pruneClients()
}

// syncRunners makes the delivery loops of Topic key match p (nil: none).
// Changes a running loop can take (filters, URIs, delivery policy, rate
// limit) are swapped in; others restart the loop, the new one starting
// after the old one finished its in-flight deliveries. d.mu must be held.
func (d *Dispatcher) syncRunners(key string, p *plan.TopicPlan) {
	want := map[string]*plan.SubscriptionPlan{}
	if p != nil {
		for i := range p.Subscriptions {
			sp := &p.Subscriptions[i]
			want[key+"/"+sp.Name] = sp
		}
	}
	for rk, r := range d.runners {
		if r.topicKey != key {
			continue
		}
		if _, ok := want[rk]; !ok {
			r.log.Info("subscription removed")
			r.stop()
			delete(d.runners, rk)
			go d.forgetWhenDone(rk, r)
		}
	}
	for rk, sp := range want {
		old := d.runners[rk]
		var oldCfg *subConfig
		if old != nil {
			oldCfg = old.cfg.Load()
		}
		cfg, err := d.compileSubscription(p, sp, oldCfg)
		if err != nil {
			d.log.Error("ignoring subscription plan", "topic", p.Namespace+"/"+p.Name, "subscription", sp.Name, "error", err)
			continue
		}
		if old != nil && !old.needsRestart(p, sp) {
			old.cfg.Store(cfg)
			old.limitsChanged()
			continue
		}
		nr := d.newRunner(key, p, sp, cfg, old)
		if old != nil {
			old.log.Info("restarting delivery for a changed subscription")
			old.stop()
		}
		d.runners[rk] = nr
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			nr.run()
		}()
	}
}

// forgetWhenDone drops a removed Subscription's metric series once its loop
// ended, unless it came back meanwhile.
func (d *Dispatcher) forgetWhenDone(rk string, r *subRunner) {
	<-r.done
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runners[rk] == nil {
		d.metrics.forgetSubscription(r.ns, r.topic, r.name)
	}
}
