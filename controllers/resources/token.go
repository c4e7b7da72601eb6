package resources

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/sources"
)

// Herald's workloads present tokens of their own ServiceAccount to the
// destinations they send to, minted with the TokenRequest API
// (auth.KubernetesTokenSource). Each workload's ServiceAccount is bound a
// Role of the workload's name allowing only create on serviceaccounts/token
// of that one ServiceAccount: it can mint tokens for itself and nobody else,
// which a Pod running as it could already do with a projected token volume
// of any audience. The Pods mount their ServiceAccount token to call the
// API, and learn which ServiceAccount they run as from the downward API
// (auth.EnvPodNamespace, auth.EnvServiceAccount).

// TokenRole is the Role named name in namespace allowing only create on
// serviceaccounts/token of serviceAccount, with meta's labels and owner.
func TokenRole(meta metav1.ObjectMeta, serviceAccount string) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta,
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"serviceaccounts/token"},
			ResourceNames: []string{serviceAccount},
			Verbs:         []string{"create"},
		}},
	}
}

// TokenRoleBinding binds the TokenRole of the same meta to serviceAccount.
func TokenRoleBinding(meta metav1.ObjectMeta, serviceAccount string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: meta.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: meta.Namespace}},
	}
}

// DispatcherTokenRole and DispatcherTokenRoleBinding let a Topic's
// dispatcher ServiceAccount mint its own tokens; both are named like it.
func DispatcherTokenRole(t *v1alpha1.Topic) *rbacv1.Role {
	return DedicatedDispatcher(t).TokenRole()
}

// DispatcherTokenRoleBinding: see DispatcherTokenRole.
func DispatcherTokenRoleBinding(t *v1alpha1.Topic) *rbacv1.RoleBinding {
	return DedicatedDispatcher(t).TokenRoleBinding()
}

// AdapterRunsHerald reports whether an EventSource's adapter is
// `herald adapter` (ping, apiServer, webhook), which mints its own tokens,
// rather than a user's container.
func AdapterRunsHerald(s *v1alpha1.EventSource) bool {
	typ := s.Spec.Type()
	return typ != "" && typ != v1alpha1.EventSourceTypeContainer
}

// AdapterServiceAccountObject is the ServiceAccount of a ping or webhook
// source's adapter, <source>-source (sources.AdapterServiceAccount); nil for
// apiServer sources, which run as the user's ServiceAccount, and container
// sources, whose template names its own.
func AdapterServiceAccountObject(s *v1alpha1.EventSource) *corev1.ServiceAccount {
	if !AdapterRunsHerald(s) || s.Spec.APIServer != nil {
		return nil
	}
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   adapterMeta(s),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// AdapterTokenRole and AdapterTokenRoleBinding, named like the adapter, let
// the ServiceAccount a ping, apiServer or webhook adapter runs as
// (sources.AdapterServiceAccount) mint its own tokens.
func AdapterTokenRole(s *v1alpha1.EventSource) *rbacv1.Role {
	return TokenRole(adapterMeta(s), sources.AdapterServiceAccount(s))
}

// AdapterTokenRoleBinding: see AdapterTokenRole.
func AdapterTokenRoleBinding(s *v1alpha1.EventSource) *rbacv1.RoleBinding {
	return TokenRoleBinding(adapterMeta(s), sources.AdapterServiceAccount(s))
}

// podIdentityEnv tells a Pod's process which ServiceAccount it runs as.
func podIdentityEnv() []corev1.EnvVar {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
	}
	return []corev1.EnvVar{
		{Name: auth.EnvPodNamespace, ValueFrom: field("metadata.namespace")},
		{Name: auth.EnvServiceAccount, ValueFrom: field("spec.serviceAccountName")},
	}
}
