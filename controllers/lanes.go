package controllers

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/plan"
)

// subscriptionConsumers are the durable consumers s is delivered from: its
// consumer, and with spec.priority one per lane (plan.LaneConsumer), the
// normal lane's first. Lag, autoscaling and status count them all.
func subscriptionConsumers(s *v1alpha1.Subscription) []string {
	c := plan.ConsumerName(s.Name)
	if s.Spec.Priority == nil || !s.Spec.Priority.Enabled {
		return []string{c}
	}
	out := []string{c}
	for _, l := range plan.Lanes {
		if l != plan.PriorityNormal {
			out = append(out, plan.LaneConsumer(c, l))
		}
	}
	return out
}

// scaleTriggers are the autoscaler's triggers of subs: one per consumer
// each is delivered from.
func scaleTriggers(subs []v1alpha1.Subscription) []resources.ScaleTrigger {
	triggers := make([]resources.ScaleTrigger, 0, len(subs))
	for i := range subs {
		s := &subs[i]
		stream := plan.StreamName(s.Namespace, s.Spec.Topic)
		for _, c := range subscriptionConsumers(s) {
			triggers = append(triggers, resources.ScaleTrigger{Stream: stream, Consumer: c})
		}
	}
	return triggers
}

// consumerStatus is status.consumer of a Subscription whose consumers
// (subscriptionConsumers, in that order) infos describe: named after the
// first, with the figures of all added up; nil when the first is missing.
func consumerStatus(infos ...*jetstream.ConsumerInfo) *v1alpha1.ConsumerStatus {
	if len(infos) == 0 || infos[0] == nil {
		return nil
	}
	st := &v1alpha1.ConsumerStatus{Name: infos[0].Name}
	for _, info := range infos {
		if info == nil {
			continue
		}
		st.Pending += info.NumPending
		st.AckPending += int64(info.NumAckPending)
		st.Redelivered += int64(info.NumRedelivered)
	}
	return st
}
