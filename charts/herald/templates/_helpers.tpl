{{/*
Names. herald.fullname is the prefix of every object the chart creates:
the release name, or "<release>-herald" when the release name does not
contain the chart name. Kubernetes names are limited to 63 characters.
*/}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.manager.fullname" -}}
{{- printf "%s-manager" (include "herald.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.nats.fullname" -}}
{{- printf "%s-nats" (include "herald.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.nats.headless" -}}
{{- printf "%s-nats-headless" (include "herald.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.manager.serviceAccount.create }}
{{- default (include "herald.manager.fullname" .) .Values.manager.serviceAccount.name }}
{{- else }}
{{- required "manager.serviceAccount.name is required when manager.serviceAccount.create is false" .Values.manager.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels. Selector labels never change across upgrades (a Deployment's or
StatefulSet's selector is immutable); the common labels may.
*/}}
{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
app.kubernetes.io/part-of: herald
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "herald.manager.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "herald.manager.labels" -}}
{{ include "herald.labels" . }}
{{ include "herald.manager.selectorLabels" . }}
{{- end }}

{{- define "herald.nats.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}-nats
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end }}

{{- define "herald.nats.labels" -}}
{{ include "herald.labels" . }}
{{ include "herald.nats.selectorLabels" . }}
{{- end }}

{{/*
Images. A digest, when given, pins the image and wins over the tag.
*/}}
{{- define "herald.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "herald.nats.image" -}}
{{- if .Values.nats.image.digest }}
{{- printf "%s@%s" .Values.nats.image.repository .Values.nats.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.nats.image.repository .Values.nats.image.tag }}
{{- end }}
{{- end }}

{{/*
NATS connection of the operator (and, through it, of every dispatcher): the
bundled StatefulSet's client Service by its cluster-wide DNS name, because
dispatchers run in the Topics' namespaces, or the external URL. tls:// makes
the clients refuse a server that does not speak TLS.
*/}}
{{- define "herald.nats.url" -}}
{{- if .Values.nats.enabled }}
{{- printf "%s://%s.%s.svc.%s:%d" (ternary "tls" "nats" .Values.nats.tls.enabled) (include "herald.nats.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.nats.ports.client) }}
{{- else }}
{{- required "nats.external.url is required when nats.enabled is false" .Values.nats.external.url }}
{{- end }}
{{- end }}

{{/*
NATS monitoring endpoint (host:port) KEDA's NATS JetStream scaler reads for
Topics with spec.dispatcher.autoscaling: dispatcher.keda.natsMonitoringEndpoint,
or the bundled StatefulSet's monitoring port.
*/}}
{{- define "herald.keda.endpoint" -}}
{{- if .Values.dispatcher.keda.natsMonitoringEndpoint }}
{{- .Values.dispatcher.keda.natsMonitoringEndpoint }}
{{- else if .Values.nats.enabled }}
{{- printf "%s.%s.svc.%s:%d" (include "herald.nats.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.nats.ports.monitor) }}
{{- end }}
{{- end }}

{{/*
JetStream replicas of the dispatch-plan key-value bucket: nats.planReplicas,
or, when 0, the bundled cluster's size (1 with external NATS).
*/}}
{{- define "herald.planReplicas" -}}
{{- if .Values.manager.planReplicas }}
{{- .Values.manager.planReplicas }}
{{- else if .Values.nats.enabled }}
{{- .Values.nats.replicas }}
{{- else }}
{{- 1 }}
{{- end }}
{{- end }}

{{/*
Leader election is on whenever more than one operator replica runs, and
can be forced on for a single replica (safe rollouts of a new version).
*/}}
{{- define "herald.leaderElect" -}}
{{- if or (gt (int .Values.manager.replicas) 1) .Values.manager.leaderElection -}}
true
{{- else -}}
false
{{- end }}
{{- end }}

{{/*
The Secret dispatchers mount in every Topic's namespace for their NATS
credentials and TLS files (keys nats.creds, ca.crt, tls.crt, tls.key);
empty when NATS needs neither.
*/}}
{{- define "herald.nats.dispatcherSecret" -}}
{{- $ext := .Values.nats.external }}
{{- if and (not .Values.nats.enabled) (or $ext.credentialsSecret $ext.tls.secret) }}
{{- if $ext.dispatcherSecret }}
{{- $ext.dispatcherSecret }}
{{- else if and $ext.credentialsSecret $ext.tls.secret (ne $ext.credentialsSecret $ext.tls.secret) }}
{{- fail "nats.external.dispatcherSecret is required when credentialsSecret and tls.secret differ: dispatchers read nats.creds, ca.crt, tls.crt and tls.key from one Secret" }}
{{- else }}
{{- default $ext.tls.secret $ext.credentialsSecret }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret holding the bundled NATS's server certificate: the one given in
nats.tls.secret, or the one the chart generates.
*/}}
{{- define "herald.nats.tlsSecret" -}}
{{- default (printf "%s-tls" (include "herald.nats.fullname" .)) .Values.nats.tls.secret }}
{{- end }}

{{/*
Monitoring. "true" when the cluster serves the Prometheus Operator's kind
monitoring.coreos.com/v1 <kind>, else empty; the chart creates a
ServiceMonitor, PodMonitor or PrometheusRule only then. Call with
(dict "ctx" $ "kind" "PodMonitor").
*/}}
{{- define "herald.monitoring.serves" -}}
{{- if .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) -}}
true
{{- end }}
{{- end }}
