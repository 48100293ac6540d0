#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# chart-source.sh: where the scripts that run helm on the Cilium chart (cilium-upgrade-preflight.sh,
# cilium-values-restore.sh) take it from. cilium_chart_source sets chart_ref and repo_args from
# CILIUM_CHART and CILIUM_REPOSITORY: a chart in an OCI registry is named by its full oci:// reference,
# --repo being for HTTP(S) chart repositories only (helm.sh/docs/topics/registries, `helm install`).
cilium_chart_source() {
    chart_ref="$CILIUM_CHART"
    repo_args=()
    if [[ "$CILIUM_REPOSITORY" == oci://* ]]; then
        chart_ref="${CILIUM_REPOSITORY%/}/${CILIUM_CHART}"
    else
        repo_args=(--repo "$CILIUM_REPOSITORY")
    fi
}
