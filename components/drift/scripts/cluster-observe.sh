#!/usr/bin/env bash
# cluster-observe.sh
#
# Read-only: what the drift check (tools/check.ts) needs to know about the cluster, as one JSON
# line on stdout. Runs on the operator's machine (or the scheduled workflow's runner) with the
# same KUBECONFIG/KUBECTL_CONTEXT as the program. Only `get` and the KPR gate's per-agent
# `exec ... cilium-dbg status` are sent; nothing is changed. Every kubectl failure is recorded
# with kubectl's own last line under "errors" and the other checks go on; the decisions (what
# counts as drift) are taken in components/drift/, not here.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   CILIUM_NAMESPACE          namespace of the Cilium release (required).
#   CILIUM_DS                 agent DaemonSet. Default cilium.
#   AGENT_SELECTOR            label selector of agent pods. Default k8s-app=cilium.
#   KUBE_PROXY_NAMESPACE      Default kube-system.
#   KUBE_PROXY_DAEMONSET      Default kube-proxy.
#   KUBE_PROXY_CONFIGMAP      Default kube-proxy.
#   KUBE_PROXY_POD_SELECTOR   Default k8s-app=kube-proxy.
#   EXEC_TIMEOUT              seconds allowed for each `kubectl exec`. Default 60.
#   MIGRATED_LABEL            the wave path's node label (set for wave stacks only): every node's value
#                             of it is read (needs get/list on nodes) and kube-proxy's DaemonSet is
#                             checked for the required node affinity NotIn "true" on it. The cluster
#                             script store's ConfigMaps are listed too (components/commands/clusterScriptStore.ts),
#                             each with whether its script still has the sha256 its name carries.
# stdout: {kubeProxy:{daemonSet,configMap,pods}, agents:[...], agentsWanted, nodes, scriptStore, errors:[{check,message}]};
# nodes and scriptStore are null unless MIGRATED_LABEL is set, else [{name, migrated}] and [{name, intact}];
# an absent object is null, one kubectl could not read is the string "unreadable".
set -euo pipefail

readonly SCRIPT=cluster-observe
# shellcheck source=SCRIPTDIR/../../kubeproxy/scripts/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../kubeproxy/scripts/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/../../waves/scripts/script-store-names.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../waves/scripts/script-store-names.sh"

need_name CILIUM_NAMESPACE CILIUM_DS KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET KUBE_PROXY_CONFIGMAP
need_selector AGENT_SELECTOR KUBE_PROXY_POD_SELECTOR
need_seconds EXEC_TIMEOUT
[[ -z "$MIGRATED_LABEL" || "$MIGRATED_LABEL" =~ ^[A-Za-z0-9./_-]+$ ]] || fail "MIGRATED_LABEL must be a label key (got '$MIGRATED_LABEL')"

: >"$workdir/errors.jsonl"
# get CHECK FILE kubectl-args...: the object(s) as JSON in FILE (empty when --ignore-not-found found
# nothing); on failure records kubectl's last stderr line under CHECK and returns 1.
get() {
    local check=$1 file=$2
    shift 2
    if "${kubectl_cmd[@]}" get "$@" -o json >"$file" 2>"$workdir/get.err"; then return 0; fi
    jq -cn --arg check "$check" --arg message "$(tail -n 1 "$workdir/get.err")" '{check: $check, message: $message}' >>"$workdir/errors.jsonl"
    return 1
}

# kube-proxy: its DaemonSet (and whether a canary keeps it off nodes), its ConfigMap, its pods.
# Anything kubectl could not read stays "unreadable" (its words are under errors).
kp_ds='"unreadable"' kp_cm='"unreadable"' kp_pods='"unreadable"'
if get "kube-proxy DaemonSet" "$workdir/kp-ds.json" -n "$KUBE_PROXY_NAMESPACE" daemonset "$KUBE_PROXY_DAEMONSET" --ignore-not-found; then
    kp_ds=$(if [[ -s "$workdir/kp-ds.json" ]]; then
        # labelAffinity: every required node selector term keeps kube-proxy off nodes labelled
        # MIGRATED_LABEL=true (the same test node-handover.sh applies before it labels a node).
        jq -c --arg a "$CANARY_ANNOTATION" --arg l "$MIGRATED_LABEL" '{canaryExclusion: ((.metadata.annotations // {}) | has($a)),
            desired: (.status.desiredNumberScheduled // 0),
            labelAffinity: ((.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms // []) as $terms
                | $l != "" and ($terms | length) > 0
                  and ($terms | all((.matchExpressions // []) | any(.key == $l and .operator == "NotIn" and (.values | index("true"))))))}' \
            "$workdir/kp-ds.json"
    else echo null; fi)
fi
if get "kube-proxy ConfigMap" "$workdir/kp-cm.json" -n "$KUBE_PROXY_NAMESPACE" configmap "$KUBE_PROXY_CONFIGMAP" --ignore-not-found; then
    kp_cm=$(if [[ -s "$workdir/kp-cm.json" ]]; then echo true; else echo false; fi)
fi
if get "kube-proxy pods" "$workdir/kp-pods.json" -n "$KUBE_PROXY_NAMESPACE" pods -l "$KUBE_PROXY_POD_SELECTOR"; then
    kp_pods=$(jq -c '[.items[] | {name: .metadata.name, node: (.spec.nodeName // "unscheduled")}]' "$workdir/kp-pods.json")
fi

# Every Cilium agent, through the KPR gate's own per-agent check.
wanted='"unreadable"'
if get "Cilium agent DaemonSet" "$workdir/cilium-ds.json" -n "$CILIUM_NAMESPACE" daemonset "$CILIUM_DS"; then
    wanted=$(jq '.status.desiredNumberScheduled // 0' "$workdir/cilium-ds.json")
fi
: >"$workdir/agents.jsonl"
if get "Cilium agent pods" "$workdir/agent-pods.json" -n "$CILIUM_NAMESPACE" pods -l "$AGENT_SELECTOR"; then
    live_agents "$workdir/agent-pods.json" >"$workdir/agent-pods.txt"
    kpr_of() { agent_kpr_result "$CILIUM_NAMESPACE" "$1" "$2" "$EXEC_TIMEOUT"; }
    for_each_agent "$workdir/agent-pods.txt" kpr_of >"$workdir/agents.jsonl"
    agents=$(jq -sc . "$workdir/agents.jsonl")
else
    agents='"unreadable"'
fi

# The wave path: which nodes carry the migrated label.
nodes=null
if [[ -n "$MIGRATED_LABEL" ]]; then
    nodes='"unreadable"'
    if get "nodes" "$workdir/nodes.json" nodes; then
        nodes=$(jq -c --arg l "$MIGRATED_LABEL" '[.items[] | {name: .metadata.name, migrated: ((.metadata.labels // {})[$l] == "true")}]' "$workdir/nodes.json")
    fi
fi

# The wave path: the cluster script store the per-node wave steps run their scripts from.
store=null
if [[ -n "$MIGRATED_LABEL" ]]; then
    store='"unreadable"'
    if get "cluster script store" "$workdir/store.json" -n "$STORE_NAMESPACE" configmap -l "$STORE_LABEL=true"; then
        : >"$workdir/store.jsonl"
        for ((i = 0; i < $(jq '.items | length' "$workdir/store.json"); i++)); do
            name="$(jq -r --argjson i "$i" '.items[$i].metadata.name' "$workdir/store.json")"
            sha="$(jq -j --argjson i "$i" '.items[$i].data.script // ""' "$workdir/store.json" | sha256sum)"
            jq -cn --arg name "$name" --arg want "$STORE_CONFIGMAP_PREFIX${sha%% *}" '{name: $name, intact: ($name == $want)}' >>"$workdir/store.jsonl"
        done
        store=$(jq -sc . "$workdir/store.jsonl")
    fi
fi

jq -cn --argjson ds "$kp_ds" --argjson cm "$kp_cm" --argjson pods "$kp_pods" \
    --argjson agents "$agents" --argjson wanted "$wanted" --argjson nodes "$nodes" --argjson store "$store" --slurpfile errors "$workdir/errors.jsonl" \
    '{kubeProxy: {daemonSet: $ds, configMap: $cm, pods: $pods}, agents: $agents, agentsWanted: $wanted, nodes: $nodes, scriptStore: $store, errors: $errors}'
