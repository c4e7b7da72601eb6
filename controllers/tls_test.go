package controllers_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/certtest"
)

// TestSubscriptionHTTPSServiceAndCACerts: a Service whose port is named
// https, or has appProtocol https, resolves to an https URI; each
// Destination's caCerts reaches the plan entry; a bundle that does not
// parse leaves the Subscription out of the plan with a condition saying
// which.
func TestSubscriptionHTTPSServiceAndCACerts(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secure"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}
	create(t, svc)
	subscriberCA, sinkCA := certtest.CA(t, "subscriber"), certtest.CA(t, "sink")
	sub := newSubscription(ns, "secure", "orders", "/in")
	sub.Spec.Subscriber.Ref = serviceRef("secure")
	sub.Spec.Subscriber.CACerts = ptr.To(subscriberCA)
	sub.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{URI: ptr.To("https://dlq.example/"), CACerts: ptr.To(sinkCA)}}
	create(t, sub)

	resolvesTo := func(want string) func() error {
		return func() error {
			if err := get(sub); err != nil {
				return err
			}
			if sub.Status.SubscriberURI != want {
				return fmt.Errorf("subscriberUri %q, want %q", sub.Status.SubscriberURI, want)
			}
			if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", ""); err != nil {
				return err
			}
			e, err := planEntry(ns, "orders", "secure")
			if err != nil || e == nil || e.SubscriberURI != want || e.SubscriberCACerts != subscriberCA ||
				e.DeadLetterCACerts != sinkCA || e.ReplyCACerts != "" {
				return fmt.Errorf("plan entry %+v: %v", e, err)
			}
			return nil
		}
	}
	eventually(t, resolvesTo(fmt.Sprintf("https://secure.%s.svc.cluster.local/in", ns)))

	// appProtocol https on another port.
	update(t, svc, func(s *corev1.Service) {
		s.Spec.Ports[0] = corev1.ServicePort{Name: "web", Port: 8443, AppProtocol: ptr.To("https")}
	})
	eventually(t, resolvesTo(fmt.Sprintf("https://secure.%s.svc.cluster.local:8443/in", ns)))

	// A bundle the CRD admits but that does not parse.
	update(t, sub, func(s *v1alpha1.Subscription) { s.Spec.Subscriber.CACerts = ptr.To(certtest.Corrupt(subscriberCA)) })
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "subscriber.caCerts: block 1: x509:"); err != nil {
			return err
		}
		if e, err := planEntry(ns, "orders", "secure"); err != nil || e != nil {
			return fmt.Errorf("still in the plan: %+v %v", e, err)
		}
		return nil
	})

	// Fixed, it is back.
	update(t, sub, func(s *v1alpha1.Subscription) { s.Spec.Subscriber.CACerts = ptr.To(subscriberCA) })
	eventually(t, resolvesTo(fmt.Sprintf("https://secure.%s.svc.cluster.local:8443/in", ns)))
}
