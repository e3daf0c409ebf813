{{- define "byob-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "byob-agent.fullname" -}}
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

{{- define "byob-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "byob-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "byob-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "byob-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "byob-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "byob-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "byob-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret the pod reads, or "" when there is none. */}}
{{- define "byob-agent.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if .Values.secrets }}
{{- include "byob-agent.fullname" . }}
{{- end }}
{{- end }}

{{/* The first ingress host as a URL, or "" without an ingress. */}}
{{- define "byob-agent.ingressURL" -}}
{{- if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := first .Values.ingress.hosts }}
{{- $scheme := "http" }}
{{- range .Values.ingress.tls }}
{{- if has $host .hosts }}{{ $scheme = "https" }}{{ end }}
{{- end }}
{{- printf "%s://%s" $scheme $host }}
{{- end }}
{{- end }}

{{/*
The configuration file's text. A string is used verbatim; a map gets the keys the chart owns filled in
where absent (the values' own keys win).
*/}}
{{- define "byob-agent.config" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- $server := dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- if .Values.metricsPort }}
{{- $_ := set $server "metricsListen" (printf "0.0.0.0:%d" (int .Values.metricsPort)) }}
{{- end }}
{{- with include "byob-agent.ingressURL" . }}
{{- $_ := set $server "baseURL" . }}
{{- end }}
{{- $owned := dict "server" $server "state" (dict "path" (printf "%s/state.db" .Values.persistence.mountPath)) }}
{{- toYaml (mergeOverwrite $owned (deepCopy .Values.config)) }}
{{- end }}
{{- end }}

{{/*
The configuration, parsed, after checking what would break the pod: the state must live on the state volume
(the root filesystem is read-only) and the listener must be reachable by the kubelet's probes. Values with
${VAR} are only known to the agent and are not checked.
*/}}
{{- define "byob-agent.configValues" -}}
{{- $cfg := fromYaml (include "byob-agent.config" .) }}
{{- if hasKey $cfg "Error" }}
{{- fail (printf "config is not valid YAML: %s" (get $cfg "Error")) }}
{{- end }}
{{- $pg := dig "state" "postgres" "" $cfg }}
{{- $path := dig "state" "path" "" $cfg | toString }}
{{- if $pg }}
{{- $dsn := dig "state" "postgres" "dsn" "" $cfg | toString }}
{{- if and $dsn (not (contains "${" $dsn)) }}
{{- fail "config: state.postgres.dsn is written in the ConfigMap; a DSN holds a password: use dsn: ${BYOB_STATE_POSTGRES_DSN} with postgres.dsnSecret (or a dsnFile under secretMount.path)" }}
{{- end }}
{{- if not (or .Values.postgres.dsnSecret.name (include "byob-agent.secretName" .)) }}
{{- fail "config: state.postgres needs its DSN from a Secret: set postgres.dsnSecret.name, or existingSecret/secrets with the key BYOB_STATE_POSTGRES_DSN" }}
{{- end }}
{{- else if gt (int .Values.replicas) 1 }}
{{- fail (printf "replicas: %d needs the PostgreSQL state (state.postgres in config): the bbolt state file takes one process only" (int .Values.replicas)) }}
{{- end }}
{{- if not $pg }}
{{- if not $path }}
{{- fail (printf "config: state.path must be set, under persistence.mountPath (%s)" .Values.persistence.mountPath) }}
{{- end }}
{{- if and (not (contains "${" $path)) (not (hasPrefix (printf "%s/" (trimSuffix "/" .Values.persistence.mountPath)) $path)) }}
{{- fail (printf "config: state.path %q is not under persistence.mountPath (%s), the only writable place" $path .Values.persistence.mountPath) }}
{{- end }}
{{- end }}
{{- $listen := dig "server" "listen" "" $cfg | toString }}
{{- if not $listen }}
{{- fail (printf "config: server.listen must be set, e.g. 0.0.0.0:%d" (int .Values.containerPort)) }}
{{- end }}
{{- if not (contains "${" $listen) }}
{{- if not (hasSuffix (printf ":%d" (int .Values.containerPort)) $listen) }}
{{- fail (printf "config: server.listen %q does not use containerPort %d" $listen (int .Values.containerPort)) }}
{{- end }}
{{- if regexMatch "^(127\\.|localhost:|\\[::1\\]:)" $listen }}
{{- fail (printf "config: server.listen %q is loopback only: the probes and the Service cannot reach it" $listen) }}
{{- end }}
{{- end }}
{{- $metrics := dig "server" "metricsListen" "" $cfg | toString }}
{{- if .Values.metricsPort }}
{{- if eq (int .Values.metricsPort) (int .Values.containerPort) }}
{{- fail (printf "metricsPort %d is containerPort: give it a port of its own, or 0 to serve the probes and metrics on containerPort" (int .Values.metricsPort)) }}
{{- end }}
{{- if not $metrics }}
{{- fail (printf "config: server.metricsListen must be set, e.g. 0.0.0.0:%d (the probes use metricsPort), or set metricsPort: 0" (int .Values.metricsPort)) }}
{{- end }}
{{- if not (contains "${" $metrics) }}
{{- if not (hasSuffix (printf ":%d" (int .Values.metricsPort)) $metrics) }}
{{- fail (printf "config: server.metricsListen %q does not use metricsPort %d" $metrics (int .Values.metricsPort)) }}
{{- end }}
{{- if regexMatch "^(127\\.|localhost:|\\[::1\\]:)" $metrics }}
{{- fail (printf "config: server.metricsListen %q is loopback only: the probes and Prometheus cannot reach it" $metrics) }}
{{- end }}
{{- end }}
{{- else if $metrics }}
{{- fail "config: server.metricsListen is set but metricsPort is 0: the probes would look for /readyz on containerPort; set metricsPort to its port" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* "true" when the config keeps the state in PostgreSQL (replicas may share it), else "". */}}
{{- define "byob-agent.postgres" -}}
{{- $cfg := fromYaml (include "byob-agent.configValues" .) }}
{{- if dig "state" "postgres" "" $cfg }}true{{ end }}
{{- end }}

{{/* The container port of /metrics and the probes. */}}
{{- define "byob-agent.metricsPortName" -}}
{{- if .Values.metricsPort }}metrics{{ else }}http{{ end }}
{{- end }}

{{/* The release notes; a named template so that tests can render them with `helm template`. */}}
{{- define "byob-agent.notes" -}}
{{- $cfg := fromYaml (include "byob-agent.configValues" .) }}
{{- $fullname := include "byob-agent.fullname" . }}
{{- $base := dig "server" "baseURL" "" $cfg | toString | trimSuffix "/" }}
{{- if not $base }}
{{- $base = printf "http://%s.%s.svc:%d" $fullname .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- $webhooks := dig "webhooks" (dict) $cfg -}}
byob-agent {{ .Chart.AppVersion }} runs as {{ int .Values.replicas }} pod(s) of Deployment {{ $fullname }} in namespace {{ .Release.Namespace }}
{{- if include "byob-agent.postgres" . }}, state in PostgreSQL (one replica leads; see byob_leader){{ end }}.

Endpoints to give your identity provider (base URL {{ $base }}):
{{- if hasKey $cfg "scim" }}
  SCIM 2.0 (Okta / Entra ID provisioning; bearer token: one from the config's scim section):
    {{ $base }}/scim/v2
{{- else }}
  SCIM 2.0: off. Add a `scim:` section (with tokens) to values.config to serve {{ $base }}/scim/v2
{{- end }}
{{- if hasKey $webhooks "okta" }}
  Okta event hook:                        {{ $base }}/webhooks/okta
{{- end }}
{{- if hasKey $webhooks "graph" }}
  Microsoft Graph change notifications:   {{ $base }}/webhooks/graph
{{- end }}
{{- if hasKey $webhooks "generic" }}
  Signed webhooks (Standard Webhooks):    {{ $base }}/webhooks/generic
{{- end }}
{{- if not $webhooks }}
  Webhooks: none configured (webhooks.okta, webhooks.graph, webhooks.generic in values.config).
{{- end }}
{{- if not .Values.ingress.enabled }}

No Ingress: publish /scim/v2 and /webhooks (ingress.enabled and ingress.hosts, or your own proxy), or try
it locally at http://127.0.0.1:8080 with
  kubectl -n {{ .Release.Namespace }} port-forward svc/{{ $fullname }} 8080:{{ .Values.service.port }}
{{- end }}
{{- if not (dig "server" "baseURL" "" $cfg) }}
Set server.baseURL in values.config to the URL the IdP uses: SCIM Location headers must be absolute.
{{- end }}

Health: /healthz, /readyz (a generic reason; details on /admin/status with the admin token). Metrics: /metrics
{{- if .Values.metricsPort }} (port {{ .Values.metricsPort }}, not behind the Ingress){{ end }}
{{- if .Values.serviceMonitor.enabled }} (scraped by ServiceMonitor {{ $fullname }}){{ end }}.
Logs: kubectl -n {{ .Release.Namespace }} logs deploy/{{ $fullname }}
{{- if not (include "byob-agent.secretName" .) }}

WARNING: no Secret (existingSecret or secrets): the config's ${VAR}s and ...File paths under
{{ .Values.secretMount.path }} have nothing to read, and the agent will not start until they do.
{{- end }}
{{- if and (not .Values.persistence.enabled) (not (include "byob-agent.postgres" .)) }}

WARNING: persistence.enabled=false: the agent's state is lost whenever the pod is replaced.
{{- end }}
{{- end }}
