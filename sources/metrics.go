package sources

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus counters of the sources, labelled by source
// type (ping, apiServer, webhook).
type Metrics struct {
	sent     *prometheus.CounterVec
	failed   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg, reusing
// counters an earlier call registered there; a nil reg registers nothing.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_source_events_sent_total",
			Help: "Events the sink accepted (2xx).",
		}, []string{"type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_source_events_failed_total",
			Help: "Events given up on: the sink refused them or all attempts failed.",
		}, []string{"type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_source_events_retries_total",
			Help: "Send attempts after the first, on 408, 429, 5xx or connection errors.",
		}, []string{"type"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_source_webhook_requests_total",
			Help: "Webhook requests answered, by HTTP status code.",
		}, []string{"code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.sent, &m.failed, &m.retries, &m.requests} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			*c = existing
		}
	}
	return m, nil
}
