{{/* The chart's name, or nameOverride. */}}
{{- define "crm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, with the chart's name unless it holds it. */}}
{{- define "crm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's objects' name: (dict "root" $ "name" "parties"). */}}
{{- define "crm.componentName" -}}
{{- printf "%s-%s" (include "crm.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects a component's pods: name and instance only. */}}
{{- define "crm.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "crm.labels" -}}
{{ include "crm.selectorLabels" . }}
app.kubernetes.io/part-of: {{ include "crm.name" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* A component's settings: its own entry over `default`, two levels deep (a component's
`autoscaling.enabled` or `resources.limits` replaces the default's, and false or 0 count). */}}
{{- define "crm.component" -}}
{{- $c := deepCopy .component -}}
{{- range $key, $value := .root.Values.default -}}
{{- if not (hasKey $c $key) -}}
{{- $_ := set $c $key (deepCopy $value) -}}
{{- else if and (kindIs "map" $value) (kindIs "map" (index $c $key)) -}}
{{- $own := index $c $key -}}
{{- range $k, $v := $value -}}
{{- if not (hasKey $own $k) -}}
{{- $_ := set $own $k (deepCopy $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "crm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "crm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "crm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The gRPC URL of peer `name` seen from the release: its Service, or peerUrls. */}}
{{- define "crm.peerUrl" -}}
{{- $peer := index .root.Values.components .name | default dict -}}
{{- if hasKey .root.Values.peerUrls .name -}}
{{- index .root.Values.peerUrls .name -}}
{{- else if $peer.enabled -}}
{{- printf "http://%s:%v" (include "crm.componentName" (dict "root" .root "name" .name)) $peer.port -}}
{{- else -}}
{{- fail (printf "%s calls %s: enable components.%s or set peerUrls.%s" .caller .name .name .name) -}}
{{- end -}}
{{- end -}}

{{/* The environment every container of component `name` gets (the server and its migrations). */}}
{{- define "crm.env" -}}
{{- $root := .root -}}
{{- $c := .c -}}
- name: CRM__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ $c.database.existingSecret }}
      key: {{ $c.database.key }}
- name: CRM__DATABASE__MAX_CONNECTIONS
  value: {{ $c.databasePool | quote }}
- name: CRM__DATABASE__MIGRATE_ON_START
  value: {{ (not $root.Values.migrations.enabled) | quote }}
- name: CRM__GRPC__LISTEN
  value: "0.0.0.0:{{ $c.port }}"
- name: CRM__ADMIN__LISTEN
  value: "0.0.0.0:{{ $c.metricsPort }}"
- name: CRM__KAFKA__BROKERS
  value: {{ $root.Values.kafka.brokers | quote }}
- name: CRM__KAFKA__CREATE_TOPICS
  value: {{ $root.Values.kafka.createTopics | quote }}
- name: CRM__KAFKA__TOPIC_PARTITIONS
  value: {{ $root.Values.kafka.topicPartitions | quote }}
- name: CRM__KAFKA__REPLICATION_FACTOR
  value: {{ $root.Values.kafka.replicationFactor | quote }}
{{- with $root.Values.auth }}
{{- if and .existingSecret .jwtSecretKey }}
- name: CRM__AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .jwtSecretKey }}
{{- end }}
{{- if and .existingSecret .serviceTokenKey }}
- name: CRM__AUTH__SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .serviceTokenKey }}
{{- end }}
{{- if .jwksUrl }}
- name: CRM__AUTH__JWKS_URL
  value: {{ .jwksUrl | quote }}
{{- end }}
{{- if .issuer }}
- name: CRM__AUTH__ISSUER
  value: {{ .issuer | quote }}
{{- end }}
{{- if .audience }}
- name: CRM__AUTH__AUDIENCE
  value: {{ .audience | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.telemetry }}
{{- if .otlpEndpoint }}
- name: CRM__TELEMETRY__OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
{{- end }}
- name: CRM__TELEMETRY__SAMPLE_RATIO
  value: {{ .sampleRatio | quote }}
- name: CRM__TELEMETRY__LOG_FORMAT
  value: {{ .logFormat | quote }}
- name: CRM__TELEMETRY__LOG_FILTER
  value: {{ .logFilter | quote }}
{{- end }}
{{- range $peer := $c.peers }}
- name: CRM__PEERS__{{ upper $peer }}
  value: {{ include "crm.peerUrl" (dict "root" $root "name" $peer "caller" $.name) | quote }}
{{- end }}
{{- $participants := $root.Values.privacyServices -}}
{{- range $name, $other := $root.Values.components }}
{{- if and $other.enabled $other.privacyParticipant }}
{{- $participants = append $participants $name -}}
{{- end }}
{{- end }}
- name: CRM__PRIVACY__SERVICES
  value: {{ join "," $participants | quote }}
{{- range $key, $value := $c.env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Egress rules to DNS and to `engines` (keys of networkPolicy.egress). */}}
{{- define "crm.egressToEngines" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
  to:
    - namespaceSelector: {}
      podSelector:
        matchLabels: {k8s-app: kube-dns}
{{- range $engine := .engines }}
{{- $rule := index $.root.Values.networkPolicy.egress $engine }}
- ports:
    {{- range $port := $rule.ports }}
    - {port: {{ $port }}, protocol: TCP}
    {{- end }}
  {{- with $rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
