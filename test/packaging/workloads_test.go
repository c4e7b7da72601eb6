package packaging_test

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// convert turns an unstructured object into a typed one, refusing fields
// the type does not have.
func convert(o *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true)
}

// podTemplate returns the pod template of a workload, or nil for any other kind.
func podTemplate(o *unstructured.Unstructured) (*corev1.PodTemplateSpec, error) {
	switch o.GetKind() {
	case "Deployment":
		var d appsv1.Deployment
		if err := convert(o, &d); err != nil {
			return nil, err
		}
		return &d.Spec.Template, nil
	case "StatefulSet":
		var s appsv1.StatefulSet
		if err := convert(o, &s); err != nil {
			return nil, err
		}
		tpl := s.Spec.Template.DeepCopy()
		// The StatefulSet controller adds a volume per claim template.
		for _, c := range s.Spec.VolumeClaimTemplates {
			tpl.Spec.Volumes = append(tpl.Spec.Volumes, corev1.Volume{
				Name: c.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: c.Name + "-" + s.Name + "-0",
				}},
			})
		}
		return tpl, nil
	case "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod":
		return nil, fmt.Errorf("unexpected workload kind %s", o.GetKind())
	}
	return nil, nil
}

// podFor is the first Pod a workload's controller would create, or nil.
func podFor(o *unstructured.Unstructured) (*corev1.Pod, error) {
	tpl, err := podTemplate(o)
	if tpl == nil || err != nil {
		return nil, err
	}
	pod := &corev1.Pod{ObjectMeta: *tpl.ObjectMeta.DeepCopy(), Spec: *tpl.Spec.DeepCopy()}
	pod.Name = o.GetName() + "-0"
	pod.Namespace = o.GetNamespace()
	return pod, nil
}

type workload struct {
	obj *unstructured.Unstructured
	tpl *corev1.PodTemplateSpec
}

func workloads(t *testing.T, objs []*unstructured.Unstructured) []workload {
	t.Helper()
	var out []workload
	for _, o := range objs {
		tpl, err := podTemplate(o)
		if err != nil {
			t.Fatalf("%s: %v", describe(o), err)
		}
		if tpl != nil {
			out = append(out, workload{o, tpl})
		}
	}
	return out
}

// selected returns the workloads in namespace whose pods sel selects.
func selected(ws []workload, namespace string, sel labels.Selector) []workload {
	var out []workload
	for _, w := range ws {
		if w.obj.GetNamespace() == namespace && sel.Matches(labels.Set(w.tpl.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// hasPort says whether every selected pod has a container port that p
// (a name or a number) refers to.
func hasPort(ws []workload, p intstr.IntOrString) bool {
	for _, w := range ws {
		found := false
		for _, c := range w.tpl.Spec.Containers {
			for _, cp := range c.Ports {
				if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return len(ws) > 0
}

// checkWiring checks the references between objs that the API server does
// not: Services, PodDisruptionBudgets, NetworkPolicies and ServiceMonitors
// select pods or Services that exist, with ports by the names they use;
// workloads run as ServiceAccounts and mount ConfigMaps that exist;
// bindings bind roles and accounts that exist; a StatefulSet's serviceName
// is a headless Service.
func checkWiring(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ws := workloads(t, objs)
	exists := func(kind, namespace, name string) bool {
		for _, o := range objs {
			if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
				return true
			}
		}
		return false
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Service":
			var s corev1.Service
			if err := convert(o, &s); err != nil {
				t.Errorf("%s: %v", describe(o), err)
				continue
			}
			pods := selected(ws, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
			if len(s.Spec.Selector) == 0 || len(pods) == 0 {
				t.Errorf("%s selects no pods (selector %v)", describe(o), s.Spec.Selector)
				continue
			}
			for _, p := range s.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				if !hasPort(pods, target) {
					t.Errorf("%s port %s: target port %s is not a container port of its pods", describe(o), p.Name, target.String())
				}
			}
		case "PodDisruptionBudget":
			var pdb policyv1.PodDisruptionBudget
			if err := convert(o, &pdb); err != nil {
				t.Errorf("%s: %v", describe(o), err)
				continue
			}
			if len(selected(ws, pdb.Namespace, labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels))) == 0 {
				t.Errorf("%s selects no pods", describe(o))
			}
		case "NetworkPolicy":
			var np networkingv1.NetworkPolicy
			if err := convert(o, &np); err != nil {
				t.Errorf("%s: %v", describe(o), err)
				continue
			}
			pods := selected(ws, np.Namespace, labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels))
			if len(pods) == 0 {
				t.Errorf("%s selects no pods", describe(o))
				continue
			}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && !hasPort(pods, *p.Port) {
						t.Errorf("%s: port %s is not a container port of its pods", describe(o), p.Port.String())
					}
				}
			}
		case "ServiceMonitor":
			matchLabels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
			endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
			var svc *corev1.Service
			for _, s := range ofKind(objs, "Service") {
				if s.GetNamespace() == o.GetNamespace() && labels.SelectorFromSet(matchLabels).Matches(labels.Set(s.GetLabels())) {
					svc = &corev1.Service{}
					if err := convert(s, svc); err != nil {
						t.Fatal(err)
					}
				}
			}
			if svc == nil {
				t.Errorf("%s selects no Service", describe(o))
				continue
			}
			for _, e := range endpoints {
				port, _ := e.(map[string]any)["port"].(string)
				found := false
				for _, p := range svc.Spec.Ports {
					found = found || p.Name == port
				}
				if !found {
					t.Errorf("%s: endpoint port %q is not a port of Service %s", describe(o), port, svc.Name)
				}
			}
		case "RoleBinding", "ClusterRoleBinding":
			var b rbacv1.RoleBinding // ClusterRoleBinding has the same fields.
			if err := convert(o, &b); err != nil {
				t.Errorf("%s: %v", describe(o), err)
				continue
			}
			ns := o.GetNamespace()
			if b.RoleRef.Kind == "ClusterRole" {
				ns = ""
			}
			if !exists(b.RoleRef.Kind, ns, b.RoleRef.Name) {
				t.Errorf("%s binds %s %s, which is not installed with it", describe(o), b.RoleRef.Kind, b.RoleRef.Name)
			}
			for _, s := range b.Subjects {
				if s.Kind == "ServiceAccount" && !exists("ServiceAccount", s.Namespace, s.Name) {
					t.Errorf("%s binds ServiceAccount %s/%s, which is not installed with it", describe(o), s.Namespace, s.Name)
				}
			}
		case "StatefulSet":
			name, _, _ := unstructured.NestedString(o.Object, "spec", "serviceName")
			svc, err := find(objs, "Service", name)
			if err != nil {
				t.Errorf("%s: governing Service: %v", describe(o), err)
			} else if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); ip != "None" {
				t.Errorf("%s: governing Service %s is not headless", describe(o), name)
			}
		}
	}
	for _, w := range ws {
		ns := w.obj.GetNamespace()
		if sa := w.tpl.Spec.ServiceAccountName; sa != "" && !exists("ServiceAccount", ns, sa) {
			t.Errorf("%s runs as ServiceAccount %s, which is not installed with it", describe(w.obj), sa)
		}
		for _, v := range w.tpl.Spec.Volumes {
			if v.ConfigMap != nil && !exists("ConfigMap", ns, v.ConfigMap.Name) {
				t.Errorf("%s mounts ConfigMap %s, which is not installed with it", describe(w.obj), v.ConfigMap.Name)
			}
		}
	}
}

// checkRestrictedContainers checks that every container of every workload
// declares the restricted profile itself (not only through the pod), so
// that it holds even where a pod-level setting is overridden: no privilege
// escalation, a read-only root filesystem, all capabilities dropped,
// non-root, seccomp RuntimeDefault (on the pod or the container).
func checkRestrictedContainers(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, w := range workloads(t, objs) {
		pod := w.tpl.Spec.SecurityContext
		for _, c := range append(w.tpl.Spec.InitContainers, w.tpl.Spec.Containers...) {
			sc := c.SecurityContext
			var problems []string
			if sc == nil {
				problems = append(problems, "no securityContext")
				sc = &corev1.SecurityContext{}
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				problems = append(problems, "allowPrivilegeEscalation is not false")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				problems = append(problems, "readOnlyRootFilesystem is not true")
			}
			if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
				problems = append(problems, "capabilities are not drop [ALL]")
			}
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (pod != nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot)
			if !nonRoot {
				problems = append(problems, "runAsNonRoot is not true")
			}
			seccomp := (sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
				(pod != nil && pod.SeccompProfile != nil && pod.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
			if !seccomp {
				problems = append(problems, "seccompProfile is not RuntimeDefault")
			}
			if len(problems) > 0 {
				t.Errorf("%s container %s: %s", describe(w.obj), c.Name, strings.Join(problems, "; "))
			}
		}
	}
}
