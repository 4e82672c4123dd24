{{/* Names, labels and the image reference shared by the chart's templates. */}}

{{/* Chart name, or nameOverride. */}}
{{- define "dynamo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name, followed by the chart name
unless the release name already contains it. Kept to 52 characters so that
suffixed names ("-operator", "-metrics") stay within 63.
*/}}
{{- define "dynamo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the operator's Deployment, Service, roles and Lease. */}}
{{- define "dynamo.operatorName" -}}
{{- printf "%s-operator" (include "dynamo.fullname" .) }}
{{- end }}

{{/* Labels every object of the chart carries, without the component. */}}
{{- define "dynamo.baseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "dynamo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dynamokv
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "dynamo.labels" -}}
{{ include "dynamo.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator's pods; they never change on upgrade. */}}
{{- define "dynamo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dynamo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The selector labels as `k=v,k2=v2`: the operator's DYNAMO_OPERATOR_POD_LABELS,
so that the storage pods' NetworkPolicies admit the operator's pods.
*/}}
{{- define "dynamo.selectorLabelList" -}}
{{- $pairs := list }}
{{- range $key, $value := include "dynamo.selectorLabels" . | fromYaml }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* ServiceAccount the operator runs as. */}}
{{- define "dynamo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dynamo.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Operator image: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "dynamo.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
