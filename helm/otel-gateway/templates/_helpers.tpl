{{/* Names and labels. */}}
{{- define "otel-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-gateway.fullname" -}}
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

{{- define "otel-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "otel-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "otel-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "otel-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otel-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "otel-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "otel-gateway.configPath" -}}/etc/gateway/config.yaml{{- end }}

{{/* The Secret the pod reads tokens from: existing, rendered by the chart, or none (""). */}}
{{- define "otel-gateway.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.data }}
{{- include "otel-gateway.fullname" . }}
{{- end }}
{{- end }}

{{/*
The effective gateway config (YAML): values.config with every endpoint the pod spec depends on
written from values, so ports, probes and the Service cannot disagree with what the gateway binds.
*/}}
{{- define "otel-gateway.config" -}}
{{- include "otel-gateway.validateValues" . }}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $addr := .Values.listenAddress }}
{{- range $key := list "extensions" "receivers" "processors" "exporters" "service" }}
{{- if not (get $cfg $key) }}{{- $_ := set $cfg $key dict }}{{- end }}
{{- end }}
{{- /* OTLP receiver protocols <-> ports */}}
{{- $protocols := dict }}
{{- if and (hasKey $cfg.receivers "otlp") $cfg.receivers.otlp (hasKey $cfg.receivers.otlp "protocols") }}
{{- $protocols = $cfg.receivers.otlp.protocols | default dict }}
{{- end }}
{{- range $name, $port := .Values.ports }}
{{- $proto := $port.protocol }}
{{- if $port.enabled }}
{{- if not (hasKey $protocols $proto) }}
{{- fail (printf "ports.%s is enabled but config.receivers.otlp.protocols.%s is not configured; disable the port or add the protocol" $name $proto) }}
{{- end }}
{{- $block := get $protocols $proto | default dict }}
{{- $_ := set $block "endpoint" (printf "%s:%v" $addr $port.containerPort) }}
{{- $_ := set $protocols $proto $block }}
{{- else if hasKey $protocols $proto }}
{{- fail (printf "config.receivers.otlp.protocols.%s is configured but ports.%s is disabled" $proto $name) }}
{{- end }}
{{- end }}
{{- /* health_check: required, the probes depend on it */}}
{{- if not (hasKey $cfg.extensions "health_check") }}
{{- fail "config.extensions.health_check is required: the liveness/readiness probes use it" }}
{{- end }}
{{- if not (has "health_check" ($cfg.service.extensions | default list)) }}
{{- fail "config.service.extensions must list health_check: the liveness/readiness probes use it" }}
{{- end }}
{{- $health := $cfg.extensions.health_check | default dict }}
{{- $_ := set $health "endpoint" (printf "%s:%v" $addr .Values.health.port) }}
{{- $_ := set $cfg.extensions "health_check" $health }}
{{- /* file_storage extensions: the persistent queue directory is the mounted volume */}}
{{- range $name, $ext := $cfg.extensions }}
{{- if regexMatch "^file_storage(/.*)?$" $name }}
{{- $block := $ext | default dict }}
{{- if not (get $block "directory") }}
{{- $_ := set $block "directory" $.Values.persistence.mountPath }}
{{- else if not (hasPrefix $.Values.persistence.mountPath $block.directory) }}
{{- fail (printf "config.extensions.%s.directory must be under persistence.mountPath (%s): the root filesystem is read-only" $name $.Values.persistence.mountPath) }}
{{- end }}
{{- $_ := set $cfg.extensions $name $block }}
{{- end }}
{{- end }}
{{- /* own metrics */}}
{{- $telemetry := get $cfg.service "telemetry" | default dict }}
{{- $metrics := get $telemetry "metrics" | default dict }}
{{- $_ := set $metrics "address" (printf "%s:%v" $addr .Values.metrics.port) }}
{{- $_ := set $telemetry "metrics" $metrics }}
{{- $_ := set $cfg.service "telemetry" $telemetry }}
{{- /* the drain deadline: one value for the gateway and for terminationGracePeriodSeconds */}}
{{- if hasKey $cfg.service "shutdown_timeout" }}
{{- fail "set the drain deadline with shutdownTimeoutSeconds, not config.service.shutdown_timeout: the chart derives terminationGracePeriodSeconds from it" }}
{{- end }}
{{- $_ := set $cfg.service "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds)) }}
{{- $text := toYaml $cfg }}
{{- /* A secret's value in the config would land in a ConfigMap: refuse to render. Values shorter
than 6 characters are not checked: they would match by chance, and are no credentials anyway. */}}
{{- range $key, $value := .Values.secrets.data }}
{{- if and (ge (len (toString $value)) 6) (contains (toString $value) $text) }}
{{- fail (printf "the value of secrets.data.%s appears in config; reference it as ${env:%s} instead" $key $key) }}
{{- end }}
{{- end }}
{{- $text }}
{{- end }}

{{- define "otel-gateway.healthPath" -}}
{{- $hc := dig "extensions" "health_check" dict (.Values.config | default dict) | default dict }}
{{- get $hc "path" | default .Values.health.path }}
{{- end }}

{{- define "otel-gateway.gracePeriod" -}}
{{- $drain := add (int .Values.preStopSleepSeconds) (int .Values.shutdownTimeoutSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 15 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownTimeoutSeconds (%v), or the drain is cut short by SIGKILL" .Values.terminationGracePeriodSeconds $drain) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the config or the chart's Secret change. */}}
{{- define "otel-gateway.podAnnotations" -}}
checksum/config: {{ include "otel-gateway.config" . | sha256sum }}
{{- if and .Values.secrets.data (not .Values.secrets.existingSecret) }}
checksum/secret: {{ toYaml .Values.secrets.data | sha256sum }}
{{- end }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end }}

{{/* The gateway container (a list item), shared by every mode and the sidecar recipe. */}}
{{- define "otel-gateway.container" -}}
- name: {{ if eq .Values.mode "sidecar" }}otel-gateway{{ else }}gateway{{ end }}
  image: {{ include "otel-gateway.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - --config
    - {{ include "otel-gateway.configPath" . }}
    {{- with .Values.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if and (eq .Values.mode "sidecar") .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  ports:
    {{- range $name, $port := .Values.ports }}
    {{- if $port.enabled }}
    - name: {{ $name }}
      containerPort: {{ $port.containerPort }}
      protocol: TCP
      {{- if $port.hostPort }}
      hostPort: {{ $port.hostPort }}
      {{- end }}
    {{- end }}
    {{- end }}
    - name: health
      containerPort: {{ .Values.health.port }}
      protocol: TCP
    - name: metrics
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
  env:
    - name: K8S_POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: K8S_POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: K8S_NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    {{- range $name, $value := .Values.env }}
    - name: {{ $name }}
      value: {{ $value | toString | quote }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $secretName := include "otel-gateway.secretName" . }}
  {{- if or $secretName .Values.envFrom }}
  envFrom:
    {{- if $secretName }}
    - secretRef:
        name: {{ $secretName }}
    {{- end }}
    {{- with .Values.envFrom }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  startupProbe:
    httpGet:
      path: {{ include "otel-gateway.healthPath" . }}
      port: health
    {{- toYaml .Values.probes.startup | nindent 4 }}
  readinessProbe:
    httpGet:
      path: {{ include "otel-gateway.healthPath" . }}
      port: health
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet:
      path: {{ include "otel-gateway.healthPath" . }}
      port: health
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: gateway-config
      mountPath: /etc/gateway
      readOnly: true
    {{- if $secretName }}
    - name: gateway-secrets
      mountPath: {{ .Values.secrets.mountPath }}
      readOnly: true
    {{- end }}
    - name: gateway-tmp
      mountPath: /tmp
    - name: gateway-queue
      mountPath: {{ .Values.persistence.mountPath }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The pod's volumes (list items). The queue volume is left out in statefulset mode with
persistence: the volumeClaimTemplate provides it. */}}
{{- define "otel-gateway.volumes" -}}
- name: gateway-config
  configMap:
    name: {{ include "otel-gateway.fullname" . }}
    items:
      - key: config.yaml
        path: config.yaml
{{- $secretName := include "otel-gateway.secretName" . }}
{{- if $secretName }}
- name: gateway-secrets
  secret:
    secretName: {{ $secretName }}
    defaultMode: 0440
{{- end }}
- name: gateway-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- $p := .Values.persistence }}
{{- if and $p.enabled (ne .Values.mode "sidecar") }}
{{- if eq .Values.mode "deployment" }}
- name: gateway-queue
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-queue" (include "otel-gateway.fullname" .)) $p.existingClaim }}
{{- else if eq .Values.mode "daemonset" }}
- name: gateway-queue
  hostPath:
    path: {{ required "persistence.hostPath is required for persistence in daemonset mode" $p.hostPath }}
    type: DirectoryOrCreate
{{- end }}
{{- else }}
- name: gateway-queue
  emptyDir: {}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod spec of the gateway's own workloads. */}}
{{- define "otel-gateway.podTemplate" -}}
metadata:
  labels:
    {{- include "otel-gateway.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- include "otel-gateway.podAnnotations" . | nindent 4 }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "otel-gateway.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  terminationGracePeriodSeconds: {{ include "otel-gateway.gracePeriod" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    {{- include "otel-gateway.container" . | nindent 4 }}
  volumes:
    {{- include "otel-gateway.volumes" . | nindent 4 }}
  {{- if and .Values.topologySpread.enabled (has .Values.mode (list "deployment" "statefulset")) }}
  topologySpreadConstraints:
    {{- if .Values.topologySpread.constraints }}
    {{- toYaml .Values.topologySpread.constraints | nindent 4 }}
    {{- else }}
    {{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
    - maxSkew: 1
      topologyKey: {{ $key }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "otel-gateway.selectorLabels" $ | nindent 10 }}
    {{- end }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
Sidecar recipe, for an application chart that has this chart as a dependency (alias `gateway`,
`gateway.mode: sidecar`). In the application's pod template:
  metadata.annotations: {{- include "otel-gateway.sidecar.podAnnotations" .Subcharts.gateway | nindent 8 }}
  initContainers (native, sidecar.native: true) or containers:
                        {{- include "otel-gateway.sidecar.container" .Subcharts.gateway | nindent 8 }}
  volumes:              {{- include "otel-gateway.sidecar.volumes" .Subcharts.gateway | nindent 8 }}
*/}}
{{- define "otel-gateway.sidecar.container" -}}
{{- if ne .Values.mode "sidecar" }}{{ fail "the sidecar recipe needs mode: sidecar in the gateway chart's values" }}{{ end }}
{{- include "otel-gateway.container" . }}
{{- end }}

{{- define "otel-gateway.sidecar.volumes" -}}
{{- include "otel-gateway.volumes" . }}
{{- end }}

{{- define "otel-gateway.sidecar.podAnnotations" -}}
{{- include "otel-gateway.podAnnotations" . }}
{{- end }}

{{/* Rules across values, checked once by the ConfigMap template. */}}
{{- define "otel-gateway.validateValues" -}}
{{- if not (has .Values.mode (list "deployment" "statefulset" "daemonset" "sidecar")) }}
{{- fail (printf "mode must be one of deployment, statefulset, daemonset, sidecar (got %q)" .Values.mode) }}
{{- end }}
{{- if and .Values.secrets.existingSecret .Values.secrets.data }}
{{- fail "set secrets.existingSecret or secrets.data, not both" }}
{{- end }}
{{- if and .Values.persistence.enabled (eq .Values.mode "deployment") (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "persistence in deployment mode is one claim for one replica: set replicaCount: 1 and autoscaling.enabled: false, or use mode: statefulset (a claim per replica)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
