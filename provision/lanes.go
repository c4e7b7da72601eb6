package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// ensureLane ensures cfg, the consumer of a priority lane of the
// Subscription whose normal-lane consumer is main. A lane consumer created
// while main exists (the Subscription turned priority on) starts after
// main's acknowledgement floor instead of at the Subscription's start
// position: main read the lane until now, so the events it has not
// acknowledged yet are delivered through the lane (some perhaps twice, as
// at-least-once allows) and none it already delivered are delivered again
// from the start.
func (p *Provisioner) ensureLane(ctx context.Context, stream, main string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	have, err := p.ConsumerInfo(ctx, stream, cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("get consumer %s: %w", cfg.Durable, err)
	}
	if have == nil {
		mi, err := p.ConsumerInfo(ctx, stream, main)
		if err != nil {
			return nil, fmt.Errorf("get consumer %s: %w", main, err)
		}
		if mi != nil {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = mi.AckFloor.Stream + 1
			cfg.OptStartTime = nil
		}
	}
	return p.EnsureConsumer(ctx, stream, cfg)
}

// ensureMain ensures cfg, the one consumer of a Subscription. When the
// server's consumer reads only the normal lane (the Subscription delivered
// by priority until now) and lane consumers exist, the consumer is created
// again after the lowest acknowledgement floor among them, so that the
// events the lanes had not delivered yet are not skipped once the lanes are
// pruned; events of the normal lane after that floor are delivered again.
func (p *Provisioner) ensureMain(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	have, err := p.ConsumerInfo(ctx, stream, cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("get consumer %s: %w", cfg.Durable, err)
	}
	if have == nil || len(have.Config.FilterSubjects) >= len(cfg.FilterSubjects) {
		return p.EnsureConsumer(ctx, stream, cfg)
	}
	floor := have.AckFloor.Stream
	lanes := 0
	for _, l := range plan.Lanes {
		name := plan.LaneConsumer(cfg.Durable, l)
		if name == cfg.Durable {
			continue
		}
		li, err := p.ConsumerInfo(ctx, stream, name)
		if err != nil {
			return nil, fmt.Errorf("get consumer %s: %w", name, err)
		}
		if li != nil {
			lanes++
			floor = min(floor, li.AckFloor.Stream)
		}
	}
	if lanes == 0 || floor >= have.AckFloor.Stream {
		return p.EnsureConsumer(ctx, stream, cfg)
	}
	if err := p.js.DeleteConsumer(ctx, stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("recreate consumer %s: %w", cfg.Durable, err)
	}
	re := cfg
	re.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	re.OptStartSeq = floor + 1
	re.OptStartTime = nil
	c, err := p.js.CreateConsumer(ctx, stream, re)
	if err != nil {
		return nil, fmt.Errorf("recreate consumer %s: %w", cfg.Durable, err)
	}
	return c.CachedInfo(), nil
}
