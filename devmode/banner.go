package devmode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/sources"
)

// Endpoints are the addresses herald dev serves.
type Endpoints struct {
	// Ingress is the base URL of the Topics' ingress.
	Ingress string
	// Display is the built-in display sink's URL; empty when disabled.
	Display string
	// Webhooks is the base URL of the webhook listener, without a trailing
	// slash; empty when disabled.
	Webhooks string
	// NATS is the embedded server's client URL.
	NATS string
	// DataDir holds the events.
	DataDir string
}

// WriteBanner prints what herald dev serves: where to POST each Topic, a
// curl example, what is subscribed, the sources running, and every manifest
// error.
func WriteBanner(w io.Writer, ep Endpoints, st *Status) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nherald dev: %d topic%s, %d subscription%s, %d source%s from %d file%s\n",
		len(st.Topics), plural(len(st.Topics)), len(st.Subscriptions), plural(len(st.Subscriptions)),
		len(st.Sources), plural(len(st.Sources)), len(st.Files), plural(len(st.Files)))
	fmt.Fprintf(&b, "  ingress  %s/<namespace>/<topic>\n", ep.Ingress)
	if ep.Display != "" {
		fmt.Fprintf(&b, "  display  %s  (built-in sink, prints events to stdout)\n", ep.Display)
	}
	if ep.Webhooks != "" {
		fmt.Fprintf(&b, "  webhooks %s/<namespace>/<eventsource>\n", ep.Webhooks)
	}
	fmt.Fprintf(&b, "  nats     %s  (data in %s)\n", ep.NATS, ep.DataDir)
	if st.Authenticate {
		b.WriteString("  auth     on: producers send a bearer token for the Topic's audience, the Topic's publish policy decides\n")
	} else {
		b.WriteString("  auth     off: every Topic accepts every request (herald dev --auth turns authentication on)\n")
	}

	if len(st.Topics) > 0 {
		b.WriteString("\nTopics (POST CloudEvents to):\n")
		width := 0
		for _, t := range st.Topics {
			width = max(width, len(t.Namespace)+1+len(t.Name))
		}
		for _, t := range st.Topics {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, t.Namespace+"/"+t.Name, t.URL)
			if st.Authenticate {
				fmt.Fprintf(&b, "      audience %s\n", t.Plan.Audience)
				fmt.Fprintf(&b, "      publish  %s\n", PolicySummary(t.Plan.Publish))
			}
		}
	}
	if len(st.Subscriptions) > 0 {
		b.WriteString("\nSubscriptions:\n")
		for _, s := range st.Subscriptions {
			fmt.Fprintf(&b, "  %s/%s: topic %s -> %s\n", s.Namespace, s.Name, s.Topic, deliveryTarget(s.Namespace, s.Topic, &s.Plan))
			fmt.Fprintf(&b, "      filters: %s\n", FilterSummary(s.Plan.Filters))
			if s.Plan.DeadLetterURI != "" {
				fmt.Fprintf(&b, "      dead letters -> %s after %d retr%s\n", s.Plan.DeadLetterURI, s.Plan.Delivery.Retry, pluralY(s.Plan.Delivery.Retry))
			}
			if s.Plan.ReplyURI != "" {
				fmt.Fprintf(&b, "      replies -> %s\n", s.Plan.ReplyURI)
			}
			if s.Plan.Paused {
				b.WriteString("      paused\n")
			}
		}
	}
	if len(st.Sources) > 0 {
		b.WriteString("\nSources:\n")
		for _, rs := range st.Sources {
			fmt.Fprintf(&b, "  %s\n", SourceSummary(ep, rs))
		}
	}
	if len(st.Foreign) > 0 {
		fmt.Fprintf(&b, "\nAlso served from the data directory (declared by other manifests, left untouched): %s\n", strings.Join(st.Foreign, ", "))
	}
	if len(st.Topics) > 0 {
		t := st.Topics[0]
		b.WriteString("\nSend an event:\n")
		fmt.Fprintf(&b, "  curl -i -X POST %s \\\n", t.URL)
		if t.Plan.Publish.Authenticate {
			// The namespace's default ServiceAccount: allow-same-namespace
			// admits it; other policies may not.
			fmt.Fprintf(&b, "    -H \"Authorization: Bearer $(herald dev token %s/default --topic %s/%s --data-dir %s)\" \\\n",
				t.Namespace, t.Namespace, t.Name, ep.DataDir)
		}
		b.WriteString("    -H 'ce-specversion: 1.0' -H 'ce-type: com.example.order.created' \\\n")
		b.WriteString("    -H 'ce-source: /curl' -H 'ce-id: 1' \\\n")
		b.WriteString("    -H 'content-type: application/json' -d '{\"id\":1}'\n")
	}
	writeProblems(&b, st)
	b.WriteString("\n")
	_, _ = io.WriteString(w, b.String())
}

// PolicySummary renders a publish policy in one line: its source, then who
// each rule admits and, when it has filters, which events, for example
// `publishers: publishers[0] system:serviceaccount:shop:checkout if type = "a"`.
func PolicySummary(p plan.PublishPolicy) string {
	if !p.Authenticate {
		return p.Source + ": anyone, no token needed"
	}
	if len(p.Rules) == 0 {
		return p.Source + ": nobody"
	}
	parts := make([]string, 0, len(p.Rules))
	for _, r := range p.Rules {
		who := strings.Join(r.Subjects, ", ")
		if who == "" {
			who = "nobody (no Namespace manifest matches)"
		}
		part := who
		if r.Name != p.Source {
			part = r.Name + " " + who
		}
		if len(r.Filters) > 0 {
			part += " if " + FilterSummary(r.Filters)
		}
		parts = append(parts, part)
	}
	return p.Source + ": " + strings.Join(parts, "; ")
}

// SourceSummary renders a running source in one line: a webhook as
// `webhook default/github  POST http://127.0.0.1:8082/default/github`, a
// ping as `ping default/heartbeat  "* * * * *" -> http://127.0.0.1:8080/default/orders`.
func SourceSummary(ep Endpoints, rs ResolvedSource) string {
	spec := rs.Source.Spec
	head := string(spec.Type()) + " " + rs.Key() + "  "
	switch {
	case spec.Webhook != nil:
		s := head + "POST " + ep.Webhooks + sources.WebhookPath(rs.Source.Namespace, rs.Source.Name) + " -> " + rs.SinkURI
		if sig := spec.Webhook.Signature; sig != nil {
			s += ", signed (" + string(sig.Type)
			if sig.Type == v1alpha1.SignatureHMAC {
				s += " in " + sig.Header
			}
			s += ")"
		}
		return s
	case spec.Ping != nil:
		s := head + strconv.Quote(spec.Ping.Schedule)
		if spec.Ping.Timezone != "" {
			s += " " + spec.Ping.Timezone
		}
		return s + " -> " + rs.SinkURI
	}
	return head + "-> " + rs.SinkURI
}

func writeProblems(b *strings.Builder, st *Status) {
	if len(st.Errors) > 0 {
		fmt.Fprintf(b, "\n%d manifest error%s (these objects are not applied, or not in this version):\n", len(st.Errors), plural(len(st.Errors)))
		for _, err := range st.Errors {
			fmt.Fprintf(b, "  ! %s\n", strings.ReplaceAll(err.Error(), "\n", "\n    "))
		}
	}
	for _, n := range st.Notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
}

// FilterSummary renders filters in one line, for example
// `type = "com.example.order.created" and source starts with "/shop"`.
// No filters renders as "none (every event)".
func FilterSummary(filters []plan.Filter) string {
	if len(filters) == 0 {
		return "none (every event)"
	}
	parts := make([]string, len(filters))
	for i := range filters {
		parts[i] = filterString(&filters[i], len(filters) > 1)
	}
	return strings.Join(parts, " and ")
}

func filterString(f *plan.Filter, nested bool) string {
	var s string
	switch {
	case f.Exact != nil:
		s = attrs(f.Exact, "=", nested)
	case f.Prefix != nil:
		s = attrs(f.Prefix, "starts with", nested)
	case f.Suffix != nil:
		s = attrs(f.Suffix, "ends with", nested)
	case f.CESQL != "":
		s = "cesql(" + f.CESQL + ")"
	case f.All != nil:
		s = join(f.All, " and ", nested)
	case f.Any != nil:
		s = join(f.Any, " or ", nested)
	case f.Not != nil:
		s = "not " + filterString(f.Not, true)
	}
	return s
}

func attrs(m map[string]string, op string, nested bool) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + op + " " + strconv.Quote(m[k])
	}
	s := strings.Join(parts, " and ")
	if nested && len(parts) > 1 {
		s = "(" + s + ")"
	}
	return s
}

func join(fs []plan.Filter, sep string, nested bool) string {
	parts := make([]string, len(fs))
	for i := range fs {
		parts[i] = filterString(&fs[i], len(fs) > 1)
	}
	s := strings.Join(parts, sep)
	if nested && len(parts) > 1 {
		s = "(" + s + ")"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralY(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

// Changes lists, one line each, how cur differs from prev: Topics and
// Subscriptions added, removed or changed (naming the changed plan fields),
// Topics deleted, and EventSources started, restarted (naming what changed,
// never a key) and stopped. prev nil means nothing was applied before.
func Changes(prev, cur *Status) []string {
	var out []string
	before := map[string]TopicStatus{}
	if prev != nil {
		for _, t := range prev.Topics {
			before[t.Namespace+"/"+t.Name] = t
		}
	}
	after := map[string]TopicStatus{}
	for _, t := range cur.Topics {
		k := t.Namespace + "/" + t.Name
		after[k] = t
		old, ok := before[k]
		if !ok {
			out = append(out, "+ topic "+k+" at "+t.URL)
			for _, s := range t.Plan.Subscriptions {
				out = append(out, "+ subscription "+t.Namespace+"/"+s.Name+" -> "+deliveryTarget(t.Namespace, t.Name, &s)+", filters: "+FilterSummary(s.Filters))
			}
			continue
		}
		a, b := old.Plan, t.Plan
		a.Subscriptions, b.Subscriptions = nil, nil
		d := diffFields(a, b)
		for _, f := range diffFields(old.Stream, t.Stream) {
			d = append(d, "stream "+f)
		}
		if len(d) > 0 {
			line := "~ topic " + k + ": " + strings.Join(d, ", ") + " changed"
			if slices.Contains(d, "publish") && cur.Authenticate {
				line += "; publish now: " + PolicySummary(t.Plan.Publish)
			}
			out = append(out, line)
		}
		oldSubs := map[string]plan.SubscriptionPlan{}
		for _, s := range old.Plan.Subscriptions {
			oldSubs[s.Name] = s
		}
		for _, s := range t.Plan.Subscriptions {
			name := t.Namespace + "/" + s.Name
			o, ok := oldSubs[s.Name]
			delete(oldSubs, s.Name)
			if !ok {
				out = append(out, "+ subscription "+name+" -> "+deliveryTarget(t.Namespace, t.Name, &s)+", filters: "+FilterSummary(s.Filters))
				continue
			}
			if d := diffFields(o, s); len(d) > 0 {
				line := "~ subscription " + name + ": " + strings.Join(d, ", ") + " changed"
				if slices.Contains(d, "filters") {
					line += "; filters now: " + FilterSummary(s.Filters)
				}
				out = append(out, line)
			}
		}
		for _, n := range slices.Sorted(maps.Keys(oldSubs)) {
			out = append(out, "- subscription "+t.Namespace+"/"+n)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok && !slices.Contains(cur.Deleted, k) {
			out = append(out, "? topic "+k+" is no longer applied (see the errors)")
		}
	}
	for _, k := range cur.Deleted {
		out = append(out, "- topic "+k+" (deleted with its events)")
	}
	return append(out, sourceChanges(prev, cur)...)
}

// sourceChanges lists the sources started, restarted and stopped.
func sourceChanges(prev, cur *Status) []string {
	var out []string
	before := map[string]ResolvedSource{}
	if prev != nil {
		for _, rs := range prev.Sources {
			before[rs.Key()] = rs
		}
	}
	for _, rs := range cur.Sources {
		k := rs.Key()
		old, ok := before[k]
		delete(before, k)
		if !ok {
			out = append(out, "+ eventsource "+k+": "+sourceLine(rs))
			continue
		}
		d := diffFields(old.Source.Spec, rs.Source.Spec)
		for i := range d {
			d[i] = "spec." + d[i]
		}
		if old.SinkURI != rs.SinkURI && !slices.Contains(d, "spec.sink") {
			d = append(d, "sink URI")
		}
		if !bytes.Equal(old.WebhookSecret, rs.WebhookSecret) {
			d = append(d, "signature key")
		}
		if len(d) > 0 {
			out = append(out, "~ eventsource "+k+": "+strings.Join(d, ", ")+" changed, restarted: "+sourceLine(rs))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		out = append(out, "- eventsource "+k+" stopped")
	}
	return out
}

// sourceLine is what a source does, for the reload log.
func sourceLine(rs ResolvedSource) string {
	spec := rs.Source.Spec
	switch {
	case spec.Webhook != nil:
		return "webhook at " + sources.WebhookPath(rs.Source.Namespace, rs.Source.Name) + " -> " + rs.SinkURI
	case spec.Ping != nil:
		return "ping " + strconv.Quote(spec.Ping.Schedule) + " -> " + rs.SinkURI
	}
	return string(spec.Type()) + " -> " + rs.SinkURI
}

// diffFields names the top-level JSON fields that differ between a and b.
func diffFields(a, b any) []string {
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(ma, mb))) {
		if !reflect.DeepEqual(ma[k], mb[k]) {
			out = append(out, k)
		}
	}
	return out
}

func mergeKeys(a, b map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// deliveryTarget is where sp's events go: the subscriber, or, for a pull
// Subscription of Topic ns/topic, the path its consumers pull from.
func deliveryTarget(ns, topic string, sp *plan.SubscriptionPlan) string {
	if sp.IsPull() {
		return "pull: POST /" + ns + "/" + topic + "/subscriptions/" + sp.Name + ":pull"
	}
	return sp.SubscriberURI
}
