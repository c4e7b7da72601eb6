package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/internal/testenv"
)

// TestAudience: with --audience, only deliveries carrying a token the API
// server's TokenReview accepts for that audience and subject are counted;
// the others get 401 and are counted as refused.
func TestAudience(t *testing.T) {
	env, err := testenv.Start(testenv.Options{NoCRDs: true})
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-dispatcher"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "intruder"}},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	mint := func(sa, audience string) string {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}
		if err := env.Client.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: sa}}, tr); err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	const aud = "http://sink.shop.svc.cluster.local"
	rv, err := newReviewer(env.Config, aud, "system:serviceaccount:shop:orders-dispatcher")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&counter{count: map[string]int{}, auth: rv})
	t.Cleanup(srv.Close)

	good := mint("orders-dispatcher", aud)
	for _, tc := range []struct {
		name, authorization string
		want                int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not a token", "Bearer x.y.z", http.StatusUnauthorized},
		{"wrong audience", "Bearer " + mint("orders-dispatcher", "other"), http.StatusUnauthorized},
		{"wrong subject", "Bearer " + mint("intruder", aud), http.StatusUnauthorized},
		{"good", "Bearer " + good, http.StatusAccepted},
		{"good, cached", "Bearer " + good, http.StatusAccepted},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		req.Header.Set("Ce-Id", tc.name)
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats["refused"] != 4 || stats["total"] != 2 || stats["unique"] != 2 {
		t.Errorf("stats %v, want 4 refused and 2 deliveries", stats)
	}
}
