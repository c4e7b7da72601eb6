package controllers_test

import (
	"context"
	"os"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/controllers/resources"
)

// as returns a client acting as ServiceAccount namespace/name.
func as(t *testing.T, namespace, name string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestManagerRoleGrantsTokenRoles runs the authorizer on the manager's
// generated ClusterRole: it may create a workload's token Role and
// RoleBinding (the API server refuses to grant what the granter does not
// hold), yet no Role granting anything beyond it; and the workload bound
// that Role may mint its own tokens and nobody else's.
func TestManagerRoleGrantsTokenRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	b, err := os.ReadFile("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "herald-manager-" + ns}, Rules: generated.Rules}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "herald-manager-" + ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "herald-manager"}}}
	for _, o := range []client.Object{cr, crb,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "herald-manager"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}},
	} {
		create(t, o)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), crb)
		_ = k8s.Delete(context.Background(), cr)
	})

	manager := as(t, ns, "herald-manager")
	meta := metav1.ObjectMeta{Namespace: ns, Name: "worker-token"}
	if err := manager.Create(ctx, resources.TokenRole(meta, "worker")); err != nil {
		t.Fatalf("the manager may not create a token Role: %v", err)
	}
	if err := manager.Create(ctx, resources.TokenRoleBinding(meta, "worker")); err != nil {
		t.Fatalf("the manager may not bind a token Role: %v", err)
	}
	more := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secrets"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	if err := manager.Create(ctx, more); !apierrors.IsForbidden(err) {
		t.Fatalf("the manager created a Role granting what it does not hold: %v", err)
	}

	worker := as(t, ns, "worker")
	mint := func(name string) error {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"x"}}}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		return worker.SubResource("token").Create(ctx, sa, tr)
	}
	// The RoleBinding takes effect once the authorizer's cache has it.
	eventually(t, func() error { return mint("worker") })
	if err := mint("other"); !apierrors.IsForbidden(err) {
		t.Fatalf("the worker minted a token of another ServiceAccount: %v", err)
	}
}
