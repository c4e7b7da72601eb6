package compiler

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// compilePull compiles a pull Subscription: no subscriber, reply, batch,
// signing, rate limit or ordering (the API server refuses them; so does
// compilePull, for herald dev's manifests and older objects), an ack
// deadline within [MinAckDeadline, MaxAckDeadline], and the policy saying
// who may pull (ConsumePolicy with rs.ConsumeMode). Retries and the
// dead-letter sink apply to events nacked or not acknowledged in time.
func compilePull(topic *v1alpha1.Topic, rs ResolvedSubscription) (plan.SubscriptionPlan, jetstream.ConsumerConfig, error) {
	s := rs.Subscription
	fail := func(err error) (plan.SubscriptionPlan, jetstream.ConsumerConfig, error) {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	switch {
	case rs.SubscriberURI != "" || s.Spec.Subscriber.Ref != nil || s.Spec.Subscriber.URI != nil:
		return fail(errors.New("a pull Subscription has no subscriber"))
	case s.Spec.Reply != nil || s.Spec.Batch != nil || s.Spec.Signing != nil || s.Spec.RateLimit != nil ||
		(s.Spec.Ordering != "" && s.Spec.Ordering != v1alpha1.OrderingUnordered):
		return fail(errors.New("reply, batch, signing, rateLimit and ordering ordered or perKey shape deliveries to a subscriber; a pull Subscription takes none of them"))
	case s.Spec.Priority != nil && s.Spec.Priority.Enabled:
		return fail(errors.New("priority applies to mode push only: a pull Subscription's consumers fetch in stream order"))
	}
	d, err := EffectiveDelivery(topic.Spec.Delivery, s.Spec.Delivery)
	if err != nil {
		return fail(err)
	}
	if err := checkCACerts(rs); err != nil {
		return fail(err)
	}
	filters, err := compileFilters(s)
	if err != nil {
		return fail(err)
	}
	deadline := DefaultAckDeadline
	if s.Spec.Pull != nil && s.Spec.Pull.AckDeadline != nil {
		if deadline, err = s.Spec.Pull.AckDeadline.Parse(); err != nil {
			return fail(fmt.Errorf("pull.ackDeadline: %w", err))
		}
		if deadline < MinAckDeadline || deadline > MaxAckDeadline {
			return fail(fmt.Errorf("pull.ackDeadline %s is not between %s and %s", deadline, MinAckDeadline, MaxAckDeadline))
		}
	}
	pol, err := ConsumePolicy(s, rs.ConsumeMode)
	if err != nil {
		return fail(err)
	}
	sp := plan.SubscriptionPlan{
		Name:               s.Name,
		Consumer:           plan.ConsumerName(s.Name),
		Generation:         s.Generation,
		Mode:               plan.ModePull,
		DeadLetterURI:      rs.DeadLetterURI,
		DeadLetterTopic:    rs.DeadLetterTopic,
		DeadLetterCACerts:  rs.DeadLetterCACerts,
		DeadLetterAudience: rs.DeadLetterAudience,
		Filters:            filters,
		Delivery:           d,
		Ordering:           plan.OrderingUnordered,
		MaxInFlight:        1,
		Paused:             s.Spec.Paused,
		AckDeadline:        plan.ToMillis(deadline),
		Consume:            &pol,
	}
	cc, err := consumerConfig(topic, s, sp)
	if err != nil {
		return fail(err)
	}
	return sp, cc, nil
}
