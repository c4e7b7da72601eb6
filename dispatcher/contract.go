package dispatcher

import (
	"net/http"
	"time"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/contract"
)

// contractLogPeriod is how often at most a Topic's contract violations
// are logged.
const contractLogPeriod = 10 * time.Second

// checkContract checks e against the Topic's contract, if it has one, and
// returns the violation that refuses e (contract enforce), nil when e may
// be stored. Every violation is counted; in warn mode a sample is logged,
// at most one per contractLogPeriod per Topic. index is e's position in a
// batch, -1 for a single event.
func (d *Dispatcher) checkContract(t *topicState, e *ce.Event, index int) *contract.Violation {
	if t.contract == nil {
		return nil
	}
	v := t.contract.Check(e)
	if v == nil {
		return nil
	}
	t.metrics.violation(v.Type, v.Declared, v.Rule)
	if t.contract.Enforce() {
		return v
	}
	if t.contractLog.allow(time.Now()) {
		id, _ := e.Get(ce.AttrID)
		src, _ := e.Get(ce.AttrSource)
		args := []any{"topic", t.plan.Namespace + "/" + t.plan.Name, "type", v.Type, "source", src, "id", id, "rule", v.Rule, "violation", v.Message}
		if index >= 0 {
			args = append(args, "index", index)
		}
		d.log.Warn("event breaks the Topic's contract, accepted (contract warn; logged at most once every 10s)", args...)
	}
	return nil
}

// refuseContract answers an event refused by the Topic's contract: 400
// naming the attribute at fault and the rule; index is the event's position
// in a batch, -1 for a single event.
func refuseContract(w http.ResponseWriter, t *topicState, v *contract.Violation, index int) {
	t.metrics.reject(reasonContract)
	body := errorBody{Error: v.Message, Attribute: v.Attribute, Rule: v.Rule}
	if index >= 0 {
		body.Index = &index
	}
	writeJSON(w, http.StatusBadRequest, body)
}
