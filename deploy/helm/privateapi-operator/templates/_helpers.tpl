{{- define "papi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name if it contains the chart name, else <release>-<chart>. */}}
{{- define "papi.fullname" -}}
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

{{- define "papi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "papi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "papi.labels" -}}
{{ include "papi.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "papi.serviceAccountName" -}}
{{- default (include "papi.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "papi.leaseName" -}}
{{- default (include "papi.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Fails the rendering when the required cluster name is missing. */}}
{{- define "papi.clusterName" -}}
{{- if not (trim (toString .Values.clusterName)) }}
{{- fail "clusterName is required: the name of this cluster, tagged on every AWS resource (privateapi.io/cluster); set it with --set clusterName=<name>" }}
{{- end }}
{{- trim (toString .Values.clusterName) }}
{{- end }}
