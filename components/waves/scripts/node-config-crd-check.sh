#!/usr/bin/env bash
# node-config-crd-check.sh: preflight, read-only. Refuses a cluster whose API server does not serve
# CiliumNodeConfig as cilium.io/v2 (CRD ciliumnodeconfigs.cilium.io, registered by cilium-operator;
# v2 since Cilium 1.16, pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnodeconfigs.yaml).
# Environment: KUBECONFIG, KUBECTL_CONTEXT.
# stdout: one JSON line (ok, versions[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-config-crd-check
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

kc get crd ciliumnodeconfigs.cilium.io -o json >"$workdir/crd.json" 2>"$workdir/err" \
    || fail "the cluster has no CiliumNodeConfig CRD ($(tr '\n' ' ' <"$workdir/err")): the node-by-node migration needs Cilium >= 1.16 with its operator running (it registers the CRDs)"
jq -e '.spec.versions | any(.name == "v2" and .served == true)' "$workdir/crd.json" >/dev/null \
    || fail "ciliumnodeconfigs.cilium.io does not serve cilium.io/v2 (served: $(jq -r '[.spec.versions[] | select(.served) | .name] | join(", ")' "$workdir/crd.json")); upgrade Cilium to 1.16 or later"
log "ciliumnodeconfigs.cilium.io serves v2"
jq -c '{ok: true, versions: [.spec.versions[] | select(.served) | .name]}' "$workdir/crd.json"
