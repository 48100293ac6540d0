#!/usr/bin/env bash
# node-config-crd-check.sh: preflight, read-only. Refuses a cluster whose API server does not serve
# CiliumNodeConfig in the version the pending object is written in (CRD ciliumnodeconfigs.cilium.io,
# registered by cilium-operator; cilium.io/v2 since Cilium 1.16,
# pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnodeconfigs.yaml).
# Environment: NODE_CONFIG_VERSION (required; e.g. v2) and NODE_CONFIG_SINCE (required; the first Cilium
# minor serving it), both from components/ciliumVersions/ciliumVersions.ts; KUBECONFIG, KUBECTL_CONTEXT.
# stdout: one JSON line (ok, versions[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-config-crd-check
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

NODE_CONFIG_VERSION="${NODE_CONFIG_VERSION:-}"
NODE_CONFIG_SINCE="${NODE_CONFIG_SINCE:-}"
[[ "$NODE_CONFIG_VERSION" =~ ^v[0-9]+((alpha|beta)[0-9]+)?$ ]] || fail "NODE_CONFIG_VERSION must be an API version such as v2 (got '${NODE_CONFIG_VERSION}')"
[[ "$NODE_CONFIG_SINCE" =~ ^[0-9]+\.[0-9]+$ ]] || fail "NODE_CONFIG_SINCE must be a Cilium minor such as 1.16 (got '${NODE_CONFIG_SINCE}')"

kc get crd ciliumnodeconfigs.cilium.io -o json >"$workdir/crd.json" 2>"$workdir/err" \
    || fail "the cluster has no CiliumNodeConfig CRD ($(tr '\n' ' ' <"$workdir/err")): the node-by-node migration needs Cilium >= ${NODE_CONFIG_SINCE} with its operator running (it registers the CRDs)"
jq -e --arg v "$NODE_CONFIG_VERSION" '.spec.versions | any(.name == $v and .served == true)' "$workdir/crd.json" >/dev/null \
    || fail "ciliumnodeconfigs.cilium.io does not serve cilium.io/${NODE_CONFIG_VERSION} (served: $(jq -r '[.spec.versions[] | select(.served) | .name] | join(", ")' "$workdir/crd.json")); upgrade Cilium to ${NODE_CONFIG_SINCE} or later"
log "ciliumnodeconfigs.cilium.io serves ${NODE_CONFIG_VERSION}"
jq -c '{ok: true, versions: [.spec.versions[] | select(.served) | .name]}' "$workdir/crd.json"
