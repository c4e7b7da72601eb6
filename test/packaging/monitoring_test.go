package packaging_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// TestChartMonitoringObjects checks that the chart creates its
// ServiceMonitor, PodMonitor and PrometheusRule only when they are switched
// on and the cluster serves their kinds, saying so in NOTES.txt when it
// does not, and the dashboard ConfigMap, which needs no CRD, whenever it is
// switched on.
func TestChartMonitoringObjects(t *testing.T) {
	on := monitoringValues
	tests := []struct {
		name   string
		values valueSet
		want   map[string]int
		notes  []string
	}{
		{"switched on, CRDs served", on,
			map[string]int{"ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1, "dashboard": 1}, nil},
		{"switched on, no CRDs", valueSet{name: "no CRDs", files: on.files},
			map[string]int{"dashboard": 1},
			[]string{"NOTE: no ServiceMonitor was created", "NOTE: no PodMonitor was created", "NOTE: no PrometheusRule was created",
				"--api-versions monitoring.coreos.com/v1/PodMonitor"}},
		{"switched on, only PodMonitor served", valueSet{name: "PodMonitor only", files: on.files,
			apiVersions: []string{"monitoring.coreos.com/v1/PodMonitor"}},
			map[string]int{"PodMonitor": 1, "dashboard": 1},
			[]string{"NOTE: no ServiceMonitor was created", "NOTE: no PrometheusRule was created"}},
		{"switched off, CRDs served", valueSet{name: "off", apiVersions: prometheusOperatorAPIs}, map[string]int{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.values, "herald-system")
			got := map[string]int{}
			for _, o := range r.objs {
				switch {
				case o.GetAPIVersion() == "monitoring.coreos.com/v1":
					got[o.GetKind()]++
				case o.GetKind() == "ConfigMap" && o.GetName() == "herald-dashboard":
					got["dashboard"]++
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("monitoring objects %v, want %v", got, tt.want)
			}
			for _, want := range tt.notes {
				if !strings.Contains(r.notes, want) {
					t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
				}
			}
			if tt.notes == nil && strings.Contains(r.notes, "NOTE: no ") {
				t.Errorf("NOTES.txt warns of a missing monitoring CRD:\n%s", r.notes)
			}
		})
	}
}

// podMonitor returns the PodMonitor the monitoring values render, with
// sets added.
func podMonitor(t *testing.T, set ...string) *unstructured.Unstructured {
	t.Helper()
	v := monitoringValues
	v.set = set
	pm, err := find(mustRender(t, v, "herald-system").objs, "PodMonitor", "herald-workloads")
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// podMonitorTargetLabels are the labels every series scraped through the
// chart's PodMonitor has besides its own: scrapeLabels and those its
// relabelings write.
func podMonitorTargetLabels(t *testing.T) []string {
	t.Helper()
	out := slices.Clone(scrapeLabels)
	eps, _, _ := unstructured.NestedSlice(podMonitor(t).Object, "spec", "podMetricsEndpoints")
	for _, ep := range eps {
		rls, _, _ := unstructured.NestedSlice(ep.(map[string]any), "relabelings")
		for _, rl := range rls {
			if l, _ := rl.(map[string]any)["targetLabel"].(string); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// operatorPods returns the pod templates of the Deployments the operator
// builds for dispatchers (a dedicated one, one serving its ingress over
// TLS, a shared one) and for the ping, apiServer and webhook adapters of
// config/samples, all in namespace ns, by a name for messages.
func operatorPods(t *testing.T, ns string) map[string]corev1.PodTemplateSpec {
	t.Helper()
	cfg := resources.DispatcherConfig{
		Image: resources.Image{Name: "ghcr.io/herald-dev/herald:" + appVersion(t)},
		NATS:  resources.NATS{URL: "tls://herald-nats.herald-system.svc.cluster.local:4222", Copied: true, Password: true, TLSCA: true},
	}
	pods := map[string]corev1.PodTemplateSpec{}
	var topic v1alpha1.Topic
	readSample(t, "eventing_v1alpha1_topic.yaml", &topic)
	topic.Namespace = ns
	pods["dedicated dispatcher"] = resources.DispatcherDeployment(&topic, cfg, nil).Spec.Template
	tls := topic.DeepCopy()
	tls.Name = "secure"
	tls.Spec.Dispatcher.TLS = &v1alpha1.DispatcherTLS{SecretName: "secure-tls"}
	pods["dedicated dispatcher with TLS"] = resources.DispatcherDeployment(tls, cfg, nil).Spec.Template
	pods["shared dispatcher"] = resources.SharedDispatcher(ns, resources.SharedDispatcherConfig{Replicas: 1}).Deployment(cfg, nil).Spec.Template
	for _, f := range []string{
		"eventing_v1alpha1_eventsource_ping.yaml",
		"eventing_v1alpha1_eventsource_apiserver.yaml",
		"eventing_v1alpha1_eventsource_webhook.yaml",
	} {
		var es v1alpha1.EventSource
		readSample(t, f, &es)
		es.Namespace = ns
		d, err := resources.AdapterDeployment(&es, "http://orders-dispatcher.shop.svc.cluster.local/shop/orders", "",
			resources.AdapterConfig{Image: cfg.Image})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pods[string(es.Spec.Type())+" adapter "+es.Name] = d.Spec.Template
	}
	return pods
}

// metaLabel is the name under which Prometheus's Kubernetes discovery
// offers a Pod's label.
func metaLabel(podLabel string) string {
	return "__meta_kubernetes_pod_label_" + regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(podLabel, "_")
}

// TestChartPodMonitorScrapesOperatorWorkloads checks the chart's PodMonitor
// against the Pods the operator creates, built by the operator's own
// builders: it selects every dispatcher and adapter Pod and no Pod of the
// chart's, scrapes a container port they have, and gives them the job
// names the alerts and the dashboard use; and it looks in the namespaces
// the operator watches.
func TestChartPodMonitorScrapesOperatorWorkloads(t *testing.T) {
	pm := podMonitor(t)
	var spec struct {
		JobLabel          string               `json:"jobLabel"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any"`
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		PodMetricsEndpoints []struct {
			Port        string `json:"port"`
			Path        string `json:"path"`
			Relabelings []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"podMetricsEndpoints"`
	}
	data, err := yaml.Marshal(pm.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("PodMonitor spec: %v\n%s", err, data)
	}
	sel, err := metav1.LabelSelectorAsSelector(&spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d podMetricsEndpoints, want 1", len(spec.PodMetricsEndpoints))
	}
	ep := spec.PodMetricsEndpoints[0]
	if ep.Path != "/metrics" {
		t.Errorf("scrapes %s, want /metrics", ep.Path)
	}
	wantJobs := map[string]bool{}
	for name, pod := range operatorPods(t, "shop") {
		if !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: the PodMonitor's selector %s does not select its labels %v", name, sel, pod.Labels)
		}
		port := false
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				port = port || (p.Name == ep.Port && p.ContainerPort == resources.MetricsPort)
			}
		}
		if !port {
			t.Errorf("%s: no container port %s (%d) to scrape", name, ep.Port, resources.MetricsPort)
		}
		job := pod.Labels[spec.JobLabel]
		wantJob := resources.DispatcherAppName
		if strings.Contains(name, "adapter") {
			wantJob = resources.AdapterAppName
			source := ""
			for _, rl := range ep.Relabelings {
				if rl.TargetLabel == "eventsource" && slices.Equal(rl.SourceLabels, []string{metaLabel(resources.LabelEventSource)}) {
					source = pod.Labels[resources.LabelEventSource]
				}
			}
			if source == "" {
				t.Errorf("%s: no relabeling gives its series the label eventsource from the Pod's %s", name, resources.LabelEventSource)
			}
		}
		if job != wantJob {
			t.Errorf("%s: job %q (its label %s), want %q", name, job, spec.JobLabel, wantJob)
		}
		wantJobs[job] = true
	}
	// The alerts and the dashboard name exactly these jobs.
	for _, f := range []string{alertsPath(), dashboardPath()} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms := regexp.MustCompile(`job=~?\\?"([^"\\]+)\\?"`).FindAllStringSubmatch(string(data), -1)
		if len(ms) == 0 {
			t.Errorf("%s selects no job", f)
		}
		for _, m := range ms {
			for j := range strings.SplitSeq(m[1], "|") {
				if !wantJobs[j] {
					t.Errorf("%s selects job %q; the PodMonitor's jobs are %v", f, j, sortedKeys(wantJobs))
				}
			}
		}
	}

	// None of the chart's own Pods.
	for _, w := range workloads(t, mustRender(t, monitoringValues, "herald-system").objs) {
		if sel.Matches(labels.Set(w.tpl.Labels)) {
			t.Errorf("the PodMonitor selects the chart's %s", describe(w.obj))
		}
	}

	// Namespaces: every one, or those the operator watches, or those given.
	if !spec.NamespaceSelector.Any || spec.NamespaceSelector.MatchNames != nil {
		t.Errorf("namespaceSelector %+v, want any", spec.NamespaceSelector)
	}
	for _, tt := range []struct {
		set  []string
		want []any
	}{
		{[]string{"manager.namespaces={shop,billing}"}, []any{"shop", "billing"}},
		{[]string{"manager.namespaces={shop,billing}", "metrics.podMonitor.namespaces={shop}"}, []any{"shop"}},
	} {
		ns, _, _ := unstructured.NestedMap(podMonitor(t, tt.set...).Object, "spec", "namespaceSelector")
		if want := map[string]any{"matchNames": tt.want}; !reflect.DeepEqual(ns, want) {
			t.Errorf("%v: namespaceSelector %v, want %v", tt.set, ns, want)
		}
	}
}

// TestChartDispatcherNetworkPolicyAdmitsScrapes checks that the
// NetworkPolicy the operator gives each dispatcher, built by its own
// builder from the selector the chart passes it, admits Prometheus in the
// namespace networkPolicy.monitoringNamespaceSelector selects to the port
// the PodMonitor scrapes, and no other namespace.
func TestChartDispatcherNetworkPolicyAdmitsScrapes(t *testing.T) {
	port := "metrics"
	eps, _, _ := unstructured.NestedSlice(podMonitor(t).Object, "spec", "podMetricsEndpoints")
	if len(eps) > 0 {
		port, _ = eps[0].(map[string]any)["port"].(string)
	}
	var topic v1alpha1.Topic
	readSample(t, "eventing_v1alpha1_topic.yaml", &topic)
	topic.Namespace = "shop"

	for _, tt := range []struct {
		selector   string
		monitoring map[string]string
	}{
		{"", map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		{"kubernetes.io/metadata.name=prometheus", map[string]string{"kubernetes.io/metadata.name": "prometheus"}},
		{"team=observability", map[string]string{"kubernetes.io/metadata.name": "obs", "team": "observability"}},
	} {
		v := monitoringValues
		if tt.selector != "" {
			v.set = []string{"networkPolicy.monitoringNamespaceSelector=" + tt.selector}
		}
		args, _ := managerArgs(t, mustRender(t, v, "herald-system").objs, "herald-manager")
		var np resources.NetworkPolicy
		for _, a := range args {
			if a == "--dispatcher-network-policy=true" {
				np.Enabled = true
			}
			if s, ok := strings.CutPrefix(a, "--metrics-namespace-selector="); ok {
				// As herald manager parses the flag.
				sel, err := metav1.ParseToLabelSelector(s)
				if err != nil {
					t.Fatalf("--metrics-namespace-selector=%s: %v", s, err)
				}
				np.MetricsNamespaces = sel
			}
		}
		if !np.Enabled || np.MetricsNamespaces == nil {
			t.Fatalf("selector %q: the operator gets no metrics namespaces: %q", tt.selector, args)
		}
		for name, pol := range map[string]*networkingv1.NetworkPolicy{
			"dedicated": resources.DispatcherNetworkPolicy(&topic, np),
			"shared":    resources.SharedDispatcher(topic.Namespace, resources.SharedDispatcherConfig{Replicas: 1}).NetworkPolicy(np),
		} {
			if !admits(t, pol, tt.monitoring, port) {
				t.Errorf("selector %q: the %s dispatcher's NetworkPolicy does not admit a Pod in a namespace labelled %v to port %s",
					tt.selector, name, tt.monitoring, port)
			}
			if admits(t, pol, map[string]string{"kubernetes.io/metadata.name": "default"}, port) {
				t.Errorf("selector %q: the %s dispatcher's NetworkPolicy admits any namespace to port %s", tt.selector, name, port)
			}
		}
	}
}

// admits says whether a rule of pol admits Pods of a namespace with
// nsLabels to the named port.
func admits(t *testing.T, pol *networkingv1.NetworkPolicy, nsLabels map[string]string, port string) bool {
	t.Helper()
	for _, rule := range pol.Spec.Ingress {
		if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
			return p.Port != nil && p.Port.StrVal == port
		}) {
			continue
		}
		if len(rule.From) == 0 {
			return true
		}
		for _, peer := range rule.From {
			if peer.NamespaceSelector == nil || peer.PodSelector != nil || peer.IPBlock != nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set(nsLabels)) {
				return true
			}
		}
	}
	return false
}

// TestChartPrometheusRule checks that the PrometheusRule carries the alerts
// of files/herald-alerts.yaml unchanged but for the runbook URL, the
// labels added and the alerts left out, and that Prometheus would load its
// groups.
func TestChartPrometheusRule(t *testing.T) {
	data, err := os.ReadFile(alertsPath())
	if err != nil {
		t.Fatal(err)
	}
	file := parseRules(t, alertsPath(), data)

	v := monitoringValues
	v.set = []string{"metrics.prometheusRule.disabled.HeraldDispatcherNotReady=true",
		"metrics.prometheusRule.additionalRuleLabels.severity=page",
		"metrics.prometheusRule.runbookURL=https://wiki.example/herald/alerts"}
	pr, err := find(mustRender(t, v, "herald-system").objs, "PrometheusRule", "herald")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(pr.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	rendered := parseRules(t, "the PrometheusRule's spec", spec)

	type key struct{ group, alert string }
	got := map[key]int{}
	for gi, g := range rendered.Groups {
		for ri := range g.Rules {
			got[key{g.Name, g.Rules[ri].Alert}] = gi*1000 + ri
		}
	}
	for _, g := range file.Groups {
		for _, want := range g.Rules {
			idx, ok := got[key{g.Name, want.Alert}]
			if want.Alert == "HeraldDispatcherNotReady" {
				if ok {
					t.Errorf("%s is disabled but rendered", want.Alert)
				}
				continue
			}
			if !ok {
				t.Errorf("group %s: alert %s is missing", g.Name, want.Alert)
				continue
			}
			r := rendered.Groups[idx/1000].Rules[idx%1000]
			if r.Expr != want.Expr || r.For != want.For || r.KeepFiringFor != want.KeepFiringFor {
				t.Errorf("%s: expr %q for %s, want %q for %s", want.Alert, r.Expr, r.For, want.Expr, want.For)
			}
			wantLabels := map[string]string{"team": "platform"}
			for k, val := range want.Labels {
				wantLabels[k] = val
			}
			if !reflect.DeepEqual(r.Labels, wantLabels) {
				t.Errorf("%s: labels %v, want %v (the alert's own severity wins)", want.Alert, r.Labels, wantLabels)
			}
			wantAnn := map[string]string{}
			for k, val := range want.Annotations {
				wantAnn[k] = val
			}
			wantAnn["runbook_url"] = "https://wiki.example/herald/alerts#" + strings.ToLower(want.Alert)
			if !reflect.DeepEqual(r.Annotations, wantAnn) {
				t.Errorf("%s: annotations %v, want %v", want.Alert, r.Annotations, wantAnn)
			}
		}
	}
	if n := len(got); n == 0 {
		t.Error("the PrometheusRule has no alerts")
	}
}

// TestChartDashboardConfigMap checks that the dashboard ConfigMap holds
// files/herald-dashboard.json unchanged, labelled and annotated for
// Grafana's sidecar, in the namespace asked for.
func TestChartDashboardConfigMap(t *testing.T) {
	_, want := readDashboard(t)
	for _, tt := range []struct {
		set       []string
		namespace string
	}{
		{nil, "herald-system"},
		{[]string{"metrics.dashboard.namespace=monitoring"}, "monitoring"},
	} {
		v := monitoringValues
		v.set = tt.set
		var cm corev1.ConfigMap
		mustConvert(t, mustRender(t, v, "herald-system").objs, "ConfigMap", "herald-dashboard", &cm)
		if cm.Namespace != tt.namespace {
			t.Errorf("%v: namespace %q, want %q", tt.set, cm.Namespace, tt.namespace)
		}
		if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Herald" {
			t.Errorf("labels %v, annotations %v: want grafana_dashboard=1 and grafana_folder=Herald", cm.Labels, cm.Annotations)
		}
		if got := cm.Data["herald.json"]; got != strings.TrimRight(string(want), "\n") {
			t.Errorf("herald.json differs from files/herald-dashboard.json (%d and %d bytes)", len(got), len(want))
		}
	}
}
