package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// TestTopicBadSchemaStalls: a contract schema that does not compile stalls
// the Topic with the schema library's explanation; a fixed one recovers.
func TestTopicBadSchemaStalls(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := newTopic(ns, "badschema")
	topic.Spec.Contract = v1alpha1.ContractEnforce
	topic.Spec.EventTypes = []v1alpha1.EventTypeSpec{{Type: "order.created", Schema: `{"type": "integr"}`}}
	create(t, topic)
	makeAvailable(t, ns, "badschema-dispatcher")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, `event type "order.created": schema:`); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionStreamReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "value must be one of")
	})
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.EventTypes[0].Schema = `{"type": "integer"}` })
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	p, err := publishedPlan(ns, "badschema")
	if err != nil {
		t.Fatal(err)
	}
	if p.Contract == nil || p.Contract.Mode != "enforce" || p.Contract.Types[0].Schema != `{"type":"integer"}` {
		t.Fatalf("plan contract %+v", p.Contract)
	}
}

// TestTopicSchemaFromConfigMap: a schema read from a ConfigMap waits for the
// ConfigMap, is published once it exists and follows its changes.
func TestTopicSchemaFromConfigMap(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := newTopic(ns, "cmschema")
	topic.Spec.Contract = v1alpha1.ContractWarn
	topic.Spec.EventTypes = []v1alpha1.EventTypeSpec{{Type: "order.created", SchemaFrom: &v1alpha1.SchemaSource{
		ConfigMapKeyRef: corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "schemas"}, Key: "order.yaml"}}}}
	create(t, topic)
	makeAvailable(t, ns, "cmschema-dispatcher")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionStreamReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound,
			fmt.Sprintf("ConfigMap %s/schemas not found", ns))
	})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "schemas"}, Data: map[string]string{"order.yaml": "type: object\n"}}
	create(t, cm)
	wantSchema := func(want string) {
		t.Helper()
		eventually(t, func() error {
			p, err := publishedPlan(ns, "cmschema")
			if err != nil {
				return err
			}
			if p.Contract == nil || p.Contract.Types[0].Schema != want {
				return fmt.Errorf("plan contract %+v, want schema %s", p.Contract, want)
			}
			return nil
		})
	}
	wantSchema(`{"type":"object"}`)
	update(t, cm, func(c *corev1.ConfigMap) { c.Data["order.yaml"] = "type: array\n" })
	wantSchema(`{"type":"array"}`)
	if err := k8s.Delete(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
}

// TestTopicCatalog: the catalog entries dispatchers write to the catalog
// bucket (dispatcher.TestCatalogFlush covers the writing) reach the
// Topic's status.eventTypes with their counts, and go with the Topic.
func TestTopicCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := readyTopic(t, ns, "catalog")
	kv, err := js.KeyValue(ctx, plan.CatalogBucket)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i, en := range []plan.CatalogEntry{
		{Type: "order.created", SourcePattern: "/shop/*", Count: 2, DataContentType: "application/json"},
		{Type: "order.shipped", SourcePattern: "/warehouse", Count: 2},
		{Type: "order.cancelled", SourcePattern: "/shop/eu", Count: 1},
	} {
		en.FirstSeen, en.LastSeen = now.Add(-time.Minute), now.Add(time.Duration(i)*time.Second)
		b, _ := json.Marshal(en)
		if _, err := kv.Put(ctx, plan.CatalogKey(ns, "catalog", fmt.Sprint("t", i)), b); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		ets := topic.Status.EventTypes
		if topic.Status.EventTypeCount != 3 || len(ets) != 3 || ets[0].Type != "order.cancelled" || ets[0].Count != 1 ||
			ets[2].Type != "order.created" || ets[2].Count != 2 || ets[2].SourcePattern != "/shop/*" || ets[2].DataContentType != "application/json" {
			return fmt.Errorf("status lists %d types: %+v", topic.Status.EventTypeCount, ets)
		}
		return nil
	})
	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		keys, err := kv.ListKeysFiltered(ctx, plan.CatalogKeys(ns, "catalog"))
		if err != nil {
			return err
		}
		for k := range keys.Keys() {
			return fmt.Errorf("catalog key %s left after the Topic's deletion", k)
		}
		return nil
	})
}

// TestSubscriptionTypesDeclared: a Subscription naming a type its Topic's
// contract does not declare gets TypesDeclared False (UndeclaredType), and
// stays Ready; declaring the types clears it.
func TestSubscriptionTypesDeclared(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := newTopic(ns, "typed")
	topic.Spec.Contract = v1alpha1.ContractWarn
	topic.Spec.EventTypes = []v1alpha1.EventTypeSpec{{Type: "order.created"}}
	create(t, topic)
	makeAvailable(t, ns, "typed-dispatcher")
	sub := newSubscription(ns, "reader", "typed", "http://reader.example/")
	sub.Spec.Types = []string{"order.created", "order.refunded"}
	sub.Spec.Filters = []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{Prefix: map[string]string{"type": "invoice."}}}}
	create(t, sub)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionTypesDeclared, metav1.ConditionFalse, v1alpha1.ReasonUndeclaredType, "order.refunded, invoice.*"); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	update(t, topic, func(tp *v1alpha1.Topic) {
		tp.Spec.EventTypes = append(tp.Spec.EventTypes, v1alpha1.EventTypeSpec{Type: "order.refunded"}, v1alpha1.EventTypeSpec{Type: "invoice.paid"})
	})
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionTypesDeclared, metav1.ConditionTrue, "", "")
	})
}
