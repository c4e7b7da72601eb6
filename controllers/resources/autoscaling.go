package resources

import (
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// ScaledObjectGVK is KEDA's ScaledObject, which the operator creates for
// Topics with spec.dispatcher.autoscaling when KEDA is installed. It is
// built as an unstructured object, so that Herald does not depend on KEDA's
// Go module.
var ScaledObjectGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}

// AnnotationAutoscaler marks a dedicated dispatcher Deployment whose
// replicas a scaler sets; its value names the scaler the operator created
// ("keda") or is "external" when the operator created none.
const AnnotationAutoscaler = "eventing.herald.dev/autoscaler"

// Values of AnnotationAutoscaler.
const (
	AutoscalerKEDA     = "keda"
	AutoscalerExternal = "external"
)

// KEDA says how KEDA's NATS JetStream scaler reaches NATS.
type KEDA struct {
	// MonitoringEndpoint is host:port of the NATS servers' monitoring
	// endpoint, whose /jsz the scaler reads.
	MonitoringEndpoint string
	// Account is the NATS account of Herald's streams; empty means "$G",
	// the global account of a server without accounts.
	Account string
	// UseHTTPS reads the monitoring endpoint over HTTPS.
	UseHTTPS bool
}

// DefaultTargetLag is spec.dispatcher.autoscaling.targetLag's default.
const DefaultTargetLag = 100

// ScaleTrigger is one JetStream consumer whose lag a ScaledObject scales
// a dispatcher on: a Subscription's consumer on its Topic's stream.
type ScaleTrigger struct {
	Stream, Consumer string
}

// DispatcherScaledObject scales Topic t's dedicated dispatcher between
// spec.dispatcher.autoscaling's minReplicas and maxReplicas with one
// nats-jetstream trigger per Subscription consumer: KEDA adds replicas while
// a consumer's lag exceeds targetLag per replica. consumers must not be
// empty (a ScaledObject needs a trigger).
func DispatcherScaledObject(t *v1alpha1.Topic, consumers []string, k KEDA) *unstructured.Unstructured {
	stream := plan.StreamName(t.Namespace, t.Name)
	triggers := make([]ScaleTrigger, 0, len(consumers))
	for _, c := range consumers {
		triggers = append(triggers, ScaleTrigger{Stream: stream, Consumer: c})
	}
	return DedicatedDispatcher(t).ScaledObject(*t.Spec.Dispatcher.Autoscaling, triggers, k)
}

// ScaledObject scales dispatcher d between a's minReplicas and maxReplicas
// with one nats-jetstream trigger per consumer in triggers: KEDA adds
// replicas while a consumer's lag exceeds targetLag per replica. triggers
// must not be empty (a ScaledObject needs one). It carries d's labels and
// owner; a shared dispatcher's caller sets the owner.
func (d Dispatcher) ScaledObject(a v1alpha1.DispatcherAutoscaling, triggers []ScaleTrigger, k KEDA) *unstructured.Unstructured {
	minReplicas, lag := int64(1), int64(DefaultTargetLag)
	if a.MinReplicas != nil {
		minReplicas = int64(*a.MinReplicas)
	}
	if a.TargetLag != nil {
		lag = *a.TargetLag
	}
	account := k.Account
	if account == "" {
		account = "$G"
	}
	ts := make([]any, 0, len(triggers))
	for _, tr := range triggers {
		ts = append(ts, map[string]any{
			"type": "nats-jetstream",
			"name": tr.Consumer, // unique: a consumer is named after its Subscription
			"metadata": map[string]any{
				"natsServerMonitoringEndpoint": k.MonitoringEndpoint,
				"account":                      account,
				"stream":                       tr.Stream,
				"consumer":                     tr.Consumer,
				"lagThreshold":                 strconv.FormatInt(lag, 10),
				"useHttps":                     strconv.FormatBool(k.UseHTTPS),
			},
		})
	}
	meta := d.meta()
	labels := map[string]any{}
	for k, v := range meta.Labels {
		labels[k] = v
	}
	md := map[string]any{"name": d.Name, "namespace": d.Namespace, "labels": labels}
	if len(meta.OwnerReferences) > 0 {
		owner := meta.OwnerReferences[0]
		md["ownerReferences"] = []any{map[string]any{
			"apiVersion": owner.APIVersion, "kind": owner.Kind, "name": owner.Name, "uid": string(owner.UID),
			"controller": true, "blockOwnerDeletion": true,
		}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": md,
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.Name},
			"minReplicaCount": minReplicas,
			"maxReplicaCount": int64(a.MaxReplicas),
			"triggers":        ts,
		},
	}}
	u.SetGroupVersionKind(ScaledObjectGVK)
	return u
}
