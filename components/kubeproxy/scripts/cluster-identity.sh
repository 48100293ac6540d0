#!/usr/bin/env bash
# cluster-identity.sh
#
# The first cluster step: records which cluster this stack migrates, as the UID of its kube-system
# namespace (set by the API server when the cluster was created, never reused). The program passes
# it as CLUSTER_UID to every later cluster step, so it is stored in each step's state and used by
# its delete as well; cluster-lib.sh then refuses any step, `pulumi destroy` included, against a
# cluster with another UID (a kubeconfig whose current context changed since the stack was created).
#
# Runs again only when its inputs change (pulumi-command re-runs create on an update). Then it gets
# the UID it printed before in PULUMI_COMMAND_STDOUT (pulumi-command v1.2.1
# provider/pkg/provider/local/commandOutputs.go: the previous stdout when addPreviousOutputInEnv)
# and refuses a different cluster: a stack migrates one cluster; to move it, destroy it first.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   PULUMI_COMMAND_STDOUT       (set by pulumi-command on an update) what this printed before.
# stdout: one JSON line {"ok":true,"clusterUid":...}. stderr: progress.
set -euo pipefail

readonly SCRIPT=cluster-identity
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

tool "${kubectl_cmd[@]}" get namespace kube-system -o json >"$workdir/kube-system.json"
uid="$(jq -r '.metadata.uid // ""' "$workdir/kube-system.json")"
[[ "$uid" =~ ^[0-9a-f-]{36}$ ]] || fail "namespace kube-system has no UID ('${uid}'); cannot tell which cluster this is"

recorded=""
if [[ -n "${PULUMI_COMMAND_STDOUT:-}" ]]; then
    recorded="$(jq -r '.clusterUid // ""' <<<"$PULUMI_COMMAND_STDOUT" 2>/dev/null || true)"
fi
if [[ -n "$recorded" && "$recorded" != "$uid" ]]; then
    fail "this stack migrated the cluster whose kube-system namespace has UID ${recorded}; the configured cluster has UID ${uid}. A stack migrates one cluster: destroy it against the old cluster first, or use another stack"
fi

log "cluster identity: kube-system namespace UID ${uid}"
jq -cn --arg uid "$uid" '{ok: true, clusterUid: $uid}'
