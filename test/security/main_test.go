// Package security tests producer authentication at the ingress against
// real parts: a kube-apiserver issuing ServiceAccount tokens through the
// TokenRequest API and answering TokenReviews, an embedded NATS server, and
// dispatchers verifying tokens offline or with TokenReview.
package security

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/dispatcher"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// Topics of the suite, all in namespace shop.
const (
	// topicOrders admits the ServiceAccounts of shop (allow-same-namespace).
	topicOrders = "orders"
	// topicLocked admits nobody (deny-all).
	topicLocked = "locked"
	// topicTyped admits shop/a for events whose type starts with
	// "shop.order." (publishers[0]).
	topicTyped = "typed"
)

var (
	env  *testenv.Env
	kube *kubernetes.Clientset
	// offline verifies tokens against the API server's keys; review with
	// the TokenReview API.
	offline, review *auth.KubernetesVerifier
	// offlineURL and reviewURL are the ingresses of dispatchers using them.
	offlineURL, reviewURL string
	// streams maps a Topic's name to its stream.
	streams = map[string]string{}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start(testenv.Options{NoCRDs: true, NATS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	return m.Run()
}

func setup(ctx context.Context) error {
	var err error
	if kube, err = kubernetes.NewForConfig(env.Config); err != nil {
		return err
	}
	for _, ns := range []string{"shop", "other"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, sa := range [][2]string{{"shop", "a"}, {"shop", "b"}, {"shop", "gone"}, {"shop", "gone-offline"}, {"other", "x"}} {
		if _, err := kube.CoreV1().ServiceAccounts(sa[0]).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa[1]}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	js := env.JetStream
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: plan.KVBucket, History: 1})
	if err != nil {
		return err
	}
	if _, err := js.CreateStream(ctx, provision.CounterStreamConfig(1)); err != nil {
		return err
	}
	policies := map[string]plan.PublishPolicy{
		topicOrders: {Source: string(plan.PublishAllowSameNamespace), Authenticate: true,
			Rules: []plan.PublishRule{{Name: string(plan.PublishAllowSameNamespace), Subjects: []string{plan.NamespaceSubjects("shop")}}}},
		topicLocked: {Source: string(plan.PublishDenyAll), Authenticate: true},
		topicTyped: {Source: "publishers", Authenticate: true,
			Rules: []plan.PublishRule{{Name: "publishers[0]", Subjects: []string{plan.ServiceAccountSubject("shop", "a")},
				Filters: []plan.Filter{{Prefix: map[string]string{"type": "shop.order."}}}}}},
	}
	for name, policy := range policies {
		res, err := compiler.Compile(&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}, nil)
		if err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, res.Stream); err != nil {
			return err
		}
		p := res.Plan
		p.Audience = plan.TopicAudience("shop", name)
		p.Publish = policy
		b, err := json.Marshal(&p)
		if err != nil {
			return err
		}
		if _, err := kv.Put(ctx, plan.Key("shop", name), b); err != nil {
			return err
		}
		streams[name] = res.Stream.Name
	}

	if offline, err = auth.NewKubernetesVerifier(env.Config, auth.KubernetesOptions{}); err != nil {
		return err
	}
	if err := offline.Discover(ctx); err != nil {
		return fmt.Errorf("offline verifier: %w", err)
	}
	if review, err = auth.NewKubernetesVerifier(env.Config, auth.KubernetesOptions{TokenReview: true}); err != nil {
		return err
	}
	if offlineURL, err = startDispatcher(ctx, offline); err != nil {
		return err
	}
	reviewURL, err = startDispatcher(ctx, review)
	return err
}

// startDispatcher runs a dispatcher checking tokens with v until ctx ends,
// and returns its ingress's URL once it serves every Topic.
func startDispatcher(ctx context.Context, v auth.Verifier) (string, error) {
	d, err := dispatcher.New(env.NATSConn, dispatcher.Options{Verifier: v})
	if err != nil {
		return "", err
	}
	go func() { _ = d.Run(ctx) }()
	srv := httptest.NewServer(d)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for name := range streams {
		for {
			// Authenticating Topics answer 401 to a request without a token.
			resp, err := http.Post(srv.URL+"/shop/"+name, "application/json", nil)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					break
				}
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("dispatcher does not serve shop/%s", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return srv.URL, nil
}

// token returns a token the API server issues for ServiceAccount ns/name
// with audience (the API server's own when empty), through the
// TokenRequest API.
func token(t testing.TB, ns, name, audience string) string {
	t.Helper()
	exp := int64(3600)
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), name, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// streamMsgs is the number of messages stored for a Topic.
func streamMsgs(t testing.TB, topic string) uint64 {
	t.Helper()
	s, err := env.JetStream.Stream(t.Context(), streams[topic])
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// deleteServiceAccount deletes ns/name and waits until the API server
// refuses tok, a token of it for audience, in a TokenReview: its
// authenticator reads ServiceAccounts from a cache.
func deleteServiceAccount(t testing.TB, ns, name, tok, audience string) {
	t.Helper()
	if err := kube.CoreV1().ServiceAccounts(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tr, err := kube.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{audience}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Status.Authenticated {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server still accepts tokens of %s/%s", ns, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
