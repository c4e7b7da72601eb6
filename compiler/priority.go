package compiler

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// Default weights of the priority lanes (v1alpha1.PriorityWeights).
const (
	DefaultWeightHigh   = 8
	DefaultWeightNormal = 3
	DefaultWeightLow    = 1
)

// compilePriority returns the lane weights of a Subscription delivering by
// priority, defaults applied; nil when p is nil or not enabled. The API
// server checks the same; herald dev's manifests and older objects come
// here too.
func compilePriority(p *v1alpha1.Priority, sp plan.SubscriptionPlan) (*plan.LaneWeights, error) {
	if p == nil || !p.Enabled {
		return nil, nil
	}
	if sp.Ordering != plan.OrderingUnordered {
		return nil, errors.New("priority needs ordering unordered: ordered and perKey Subscriptions keep strict order and ignore the priority extension")
	}
	w := plan.LaneWeights{High: DefaultWeightHigh, Normal: DefaultWeightNormal, Low: DefaultWeightLow}
	if p.Weights != nil {
		for _, f := range []struct {
			name string
			in   int32
			out  *int
		}{
			{"high", p.Weights.High, &w.High},
			{"normal", p.Weights.Normal, &w.Normal},
			{"low", p.Weights.Low, &w.Low},
		} {
			switch {
			case f.in == 0:
			case f.in < 1 || f.in > 100:
				return nil, fmt.Errorf("priority.weights.%s %d is not between 1 and 100", f.name, f.in)
			default:
				*f.out = int(f.in)
			}
		}
	}
	return &w, nil
}

// LaneConsumerConfigs are the consumers of the high and low lanes of a
// Subscription delivering by priority, made from cc, the consumer of its
// normal lane: the same settings, each filtering its LaneSubject.
func LaneConsumerConfigs(topic *v1alpha1.Topic, cc jetstream.ConsumerConfig) []jetstream.ConsumerConfig {
	out := make([]jetstream.ConsumerConfig, 0, 2)
	for _, p := range plan.Lanes {
		if p == plan.PriorityNormal {
			continue
		}
		lc := cc
		lc.Name = plan.LaneConsumer(cc.Durable, p)
		lc.Durable = lc.Name
		lc.Description = cc.Description + " (" + string(p) + " priority)"
		lc.FilterSubjects = []string{plan.LaneSubject(topic.Namespace, topic.Name, p)}
		lc.Metadata = map[string]string{"herald.dev/lane": string(p)}
		for k, v := range cc.Metadata {
			lc.Metadata[k] = v
		}
		out = append(out, lc)
	}
	return out
}
