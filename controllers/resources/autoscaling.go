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

// DispatcherScaledObject scales Topic t's dedicated dispatcher between
// spec.dispatcher.autoscaling's minReplicas and maxReplicas with one
// nats-jetstream trigger per Subscription consumer: KEDA adds replicas while
// a consumer's lag exceeds targetLag per replica. consumers must not be
// empty (a ScaledObject needs a trigger).
func DispatcherScaledObject(t *v1alpha1.Topic, consumers []string, k KEDA) *unstructured.Unstructured {
	a := t.Spec.Dispatcher.Autoscaling
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
	triggers := make([]any, 0, len(consumers))
	for _, c := range consumers {
		triggers = append(triggers, map[string]any{
			"type": "nats-jetstream",
			"name": c,
			"metadata": map[string]any{
				"natsServerMonitoringEndpoint": k.MonitoringEndpoint,
				"account":                      account,
				"stream":                       plan.StreamName(t.Namespace, t.Name),
				"consumer":                     c,
				"lagThreshold":                 strconv.FormatInt(lag, 10),
				"useHttps":                     strconv.FormatBool(k.UseHTTPS),
			},
		})
	}
	d := DedicatedDispatcher(t)
	meta := d.meta()
	labels := map[string]any{}
	for k, v := range meta.Labels {
		labels[k] = v
	}
	owner := meta.OwnerReferences[0]
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":      d.Name,
			"namespace": d.Namespace,
			"labels":    labels,
			"ownerReferences": []any{map[string]any{
				"apiVersion": owner.APIVersion, "kind": owner.Kind, "name": owner.Name, "uid": string(owner.UID),
				"controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.Name},
			"minReplicaCount": minReplicas,
			"maxReplicaCount": int64(a.MaxReplicas),
			"triggers":        triggers,
		},
	}}
	u.SetGroupVersionKind(ScaledObjectGVK)
	return u
}
