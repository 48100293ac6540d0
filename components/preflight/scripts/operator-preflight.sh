#!/usr/bin/env bash
# operator-preflight.sh
#
# Runs on the operator's machine first in the graph, before the Helm release changes anything,
# and changes nothing itself (only `kubectl get`/`version` and `helm version`). It refuses a
# migration that is known to break and warns about one that is known to surprise.
#
# Environment:
#   KUBECONFIG            (optional) standard kubectl variable.
#   KUBECTL_CONTEXT       (optional) kubeconfig context, passed as --context.
#   CILIUM_VERSION        (required) the Cilium chart version the migration installs, e.g. 1.19.0.
#   IPVS_HANG             (required) what cilium/cilium#44464 means for CILIUM_VERSION: refuse, warn or
#                         none. IPVS_HANG_MINOR / IPVS_SAFE_MINOR (required): the affected minor and the
#                         one to migrate with instead. All four come from
#                         components/ciliumVersions/ciliumVersions.ts (operatorPreflightVersionEnv).
#   KUBE_PROXY_NAMESPACE  (optional) default kube-system.
#   KUBE_PROXY_DAEMONSET  (optional) default kube-proxy.
#   KUBE_PROXY_CONFIGMAP  (optional) default kube-proxy.
#   KEEPALIVED_VIPS       (optional) comma list of the VIPs keepalived holds on the nodes
#                         (the tproxy VIPs), e.g. 172.25.4.1,2001:db8::1.
#   NODEPORT_VIPS_SERVED  (optional) comma list of those VIPs that cilium.nodePortAddresses covers, so
#                         Cilium serves NodePorts on them (see the warning below).
#   K8S_SERVICE_HOST      (optional) Cilium's k8sServiceHost, for the report.
#   NEEDS_HELM            (optional) 1 (default) when helm must be present, else 0.
#   CLUSTER_UID           (optional) kube-system namespace UID recorded by cluster-identity.sh;
#                         another cluster is refused.
#   REQUEST_TIMEOUT       (optional) seconds allowed for each API request. Default 15.
#
# stdout: one JSON line {"ok":..,"failures":[{"check","message"}],"warnings":[..],...}
# stderr: human-readable lines. Exit 0 when nothing failed (warnings allowed), 1 when any check
# failed (all are listed), 2 on bad environment values.
#
# Checks (failure names in brackets):
#   kubectl, jq (and helm) on PATH                                        [tools]
#   helm's major version is one the scripts were checked against (3 or 4); reported as helmMajor.
#   Helm 4 changed flags the scripts could use (helm list lost --all, helm/helm 8a73d9798), so an
#   unknown major is refused rather than trusted                          [helm-version]
#   the cluster is the one this stack recorded (CLUSTER_UID), if any     [wrong-cluster]
#   the context exists and its API server answers and is ready            [kube-context] [cluster-unreachable] [cluster-not-ready]
#   kube-proxy's mode: the ConfigMap's config.conf `mode:` (empty = iptables), else the
#   DaemonSet's --proxy-mode flag; unknown or unreadable is refused         [kube-proxy-mode]
#   IPVS mode with an affected Cilium (IPVS_HANG=refuse: any 1.19.x, pre-releases included) is refused:
#   agents hang in Init, cilium/cilium#44464, and no 1.19 release with a fix is confirmed [ipvs-cilium-44464]
#   IPVS mode with a later Cilium (IPVS_HANG=warn: >= 1.20) is warned about: not confirmed either way
#                                                                         [ipvs-cilium-44464-unconfirmed]
#   kube-proxy already gone (no DaemonSet, no ConfigMap) is reported, not a failure.
#
# Warning "nodeport-on-vip" (cilium/cilium#37691: with KPR, NodePorts are served on one address per device,
# the node IP where it is, unless --nodeport-addresses lists more, so not on a keepalived VIP by default).
# Condition: some VIP in KEEPALIVED_VIPS is not in NODEPORT_VIPS_SERVED AND some Service allocates node
# ports (type NodePort, or LoadBalancer without allocateLoadBalancerNodePorts: false). Such a
# NodePort answers on node addresses but not on that VIP after the migration.
# K8S_SERVICE_HOST being one of the VIPs is reported (apiServerOnVip) but is not itself a
# warning: the agents reach the API server's host socket on the VIP, which is no NodePort.
set -euo pipefail

readonly IPVS_ISSUE="cilium/cilium#44464"
readonly NODEPORT_VIP_ISSUE="cilium/cilium#37691"

bad_env() { echo "operator-preflight: $1" >&2; exit 2; }

CILIUM_VERSION="${CILIUM_VERSION:-}"
IPVS_HANG="${IPVS_HANG:-}"
IPVS_HANG_MINOR="${IPVS_HANG_MINOR:-}"
IPVS_SAFE_MINOR="${IPVS_SAFE_MINOR:-}"
KUBE_PROXY_NAMESPACE="${KUBE_PROXY_NAMESPACE:-kube-system}"
KUBE_PROXY_DAEMONSET="${KUBE_PROXY_DAEMONSET:-kube-proxy}"
KUBE_PROXY_CONFIGMAP="${KUBE_PROXY_CONFIGMAP:-kube-proxy}"
KEEPALIVED_VIPS="${KEEPALIVED_VIPS:-}"
K8S_SERVICE_HOST="${K8S_SERVICE_HOST:-}"
NEEDS_HELM="${NEEDS_HELM:-1}"
REQUEST_TIMEOUT="${REQUEST_TIMEOUT:-15}"
readonly k8s_name='^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$'
[[ $CILIUM_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || bad_env "CILIUM_VERSION must be a chart version like 1.19.2 (got '${CILIUM_VERSION}')"
[[ $IPVS_HANG =~ ^(refuse|warn|none)$ ]] || bad_env "IPVS_HANG must be refuse, warn or none (got '${IPVS_HANG}')"
[[ $IPVS_HANG_MINOR =~ ^[0-9]+\.[0-9]+$ ]] || bad_env "IPVS_HANG_MINOR must be a minor version like 1.19 (got '${IPVS_HANG_MINOR}')"
[[ $IPVS_SAFE_MINOR =~ ^[0-9]+\.[0-9]+$ ]] || bad_env "IPVS_SAFE_MINOR must be a minor version like 1.18 (got '${IPVS_SAFE_MINOR}')"
[[ $KUBE_PROXY_NAMESPACE =~ $k8s_name ]] || bad_env "KUBE_PROXY_NAMESPACE must be a namespace name (got '${KUBE_PROXY_NAMESPACE}')"
[[ $KUBE_PROXY_DAEMONSET =~ $k8s_name ]] || bad_env "KUBE_PROXY_DAEMONSET must be an object name (got '${KUBE_PROXY_DAEMONSET}')"
[[ $KUBE_PROXY_CONFIGMAP =~ $k8s_name ]] || bad_env "KUBE_PROXY_CONFIGMAP must be an object name (got '${KUBE_PROXY_CONFIGMAP}')"
[[ $KEEPALIVED_VIPS =~ ^[0-9A-Fa-f.:,]*$ ]] || bad_env "KEEPALIVED_VIPS must be a comma list of addresses (got '${KEEPALIVED_VIPS}')"
NODEPORT_VIPS_SERVED="${NODEPORT_VIPS_SERVED:-}"
[[ $NODEPORT_VIPS_SERVED =~ ^[0-9A-Fa-f.:,]*$ ]] || bad_env "NODEPORT_VIPS_SERVED must be a comma list of addresses (got '${NODEPORT_VIPS_SERVED}')"
[[ $K8S_SERVICE_HOST =~ ^[A-Za-z0-9.:-]*$ ]] || bad_env "K8S_SERVICE_HOST must be an address or DNS name (got '${K8S_SERVICE_HOST}')"
[[ $NEEDS_HELM =~ ^[01]$ ]] || bad_env "NEEDS_HELM must be 0 or 1 (got '${NEEDS_HELM}')"
[[ ${CLUSTER_UID:-} =~ ^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$ ]] || bad_env "CLUSTER_UID must be a UID (got '${CLUSTER_UID:-}')"
[[ $REQUEST_TIMEOUT =~ ^[1-9][0-9]{0,3}$ ]] || bad_env "REQUEST_TIMEOUT must be a number of seconds (got '${REQUEST_TIMEOUT}')"
if [[ -n "${KUBECTL_CONTEXT:-}" ]] && ! [[ $KUBECTL_CONTEXT =~ ^[A-Za-z0-9@_.:/-]+$ ]]; then
    bad_env "KUBECTL_CONTEXT must be a kubeconfig context name (got '${KUBECTL_CONTEXT}')"
fi

log() { echo "operator-preflight: $*" >&2; }

# shellcheck source=SCRIPTDIR/preflight-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/preflight-lib.sh"

context="" server_version="" helm_version="" helm_major="" kube_proxy_state=unknown kube_proxy_mode="" mode_source=""
api_server_on_vip=0
nodeport_services=()
unserved_vips=()
IFS=, read -r -a vips <<<"$KEEPALIVED_VIPS"

finish() {
    local ok=1
    [ "$failure_count" -eq 0 ] || ok=0
    printf '{"ok":%s,"failures":[%s],"warnings":[%s],"context":%s,"serverVersion":%s,"helmVersion":%s,' \
        "$(json_bool "$ok")" "$failures_json" "$warnings_json" "$(json_str "$context")" "$(json_str "$server_version")" "$(json_str "$helm_version")"
    printf '"helmMajor":%s,' "$(json_str "$helm_major")"
    printf '"ciliumVersion":%s,"kubeProxy":{"state":%s,"mode":%s,"modeSource":%s},' \
        "$(json_str "$CILIUM_VERSION")" "$(json_str "$kube_proxy_state")" "$(json_str "$kube_proxy_mode")" "$(json_str "$mode_source")"
    printf '"keepalivedVips":%s,"nodePortVipsUnserved":%s,"apiServerOnVip":%s,"nodePortServices":%s}\n' \
        "$(json_list "${vips[@]}")" "$(json_list "${unserved_vips[@]}")" "$(json_bool "$api_server_on_vip")" "$(json_list "${nodeport_services[@]}")"
    if [ "$ok" = 1 ]; then
        log "preflight passed"
        exit 0
    fi
    log "preflight FAILED ($failure_count): nothing was changed; fix the failures above and re-run"
    exit 1
}

# --- tools ------------------------------------------------------------------------------------
tools=(kubectl jq)
if [ "$NEEDS_HELM" = 1 ]; then tools+=(helm); fi
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    fail_check tools "missing on PATH: ${missing[*]} (install them on the machine that runs pulumi)"
    finish
fi
if [ "$NEEDS_HELM" = 1 ]; then
    helm_version=$(helm version --short 2>/dev/null) || { fail_check tools "helm is on PATH but 'helm version' fails"; helm_version=""; }
    # `helm version --short` prints vMAJOR.MINOR.PATCH+gCOMMIT (helm/helm pkg/cmd/version.go formatVersion).
    if [[ $helm_version =~ ^v([0-9]+)\.[0-9]+\.[0-9]+ ]]; then
        helm_major=${BASH_REMATCH[1]}
        case "$helm_major" in
            3 | 4) log "helm $helm_version (Helm $helm_major)" ;;
            *) fail_check helm-version "helm $helm_version is Helm $helm_major; the scripts' helm flags are checked against Helm 3 and Helm 4 only: use one of those" ;;
        esac
    elif [ -n "$helm_version" ]; then
        fail_check helm-version "cannot read helm's version from '$helm_version'"
    fi
fi

# --- context and reachability -----------------------------------------------------------------
kubectl_cmd=(kubectl --request-timeout="${REQUEST_TIMEOUT}s")
if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then
    kubectl_cmd+=(--context "$KUBECTL_CONTEXT")
    context=$KUBECTL_CONTEXT
elif ! context=$(kubectl config current-context 2>/dev/null) || [ -z "$context" ]; then
    context=""
    fail_check kube-context "no KUBECTL_CONTEXT given and the kubeconfig has no current context"
    finish
fi
log "checking context '$context'"

err_file=$(mktemp "${TMPDIR:-/tmp}/operator-preflight.XXXXXXXX")
trap 'rm -f "$err_file"' EXIT
# Runs kubectl with stderr kept in $err_file. Callers use $(kube ...), a subshell, so the
# error is read back afterwards with kube_error.
kube() { "${kubectl_cmd[@]}" "$@" 2>"$err_file"; }
kube_error() { sed '/^[[:space:]]*$/d' "$err_file" | tail -n 1; }

if ! version_json=$(kube version -o json); then
    fail_check cluster-unreachable "cannot reach the API server of context '$context': $(kube_error)"
    finish
fi
server_version=$(jq -r '.serverVersion.gitVersion // empty' <<<"$version_json" 2>/dev/null || true)
if [ -z "$server_version" ]; then
    fail_check cluster-unreachable "context '$context' answered without a server version"
    finish
fi
if ! readyz=$(kube get --raw /readyz) || [[ $readyz != ok* ]]; then
    fail_check cluster-not-ready "API server of context '$context' is not ready: ${readyz:-$(kube_error)}"
    finish
fi
log "reached $server_version through '$context'"

# --- the cluster this stack recorded ----------------------------------------------------------
if [[ -n "${CLUSTER_UID:-}" ]]; then
    if ! ns_json=$(kube get namespace kube-system -o json); then
        fail_check wrong-cluster "cannot read namespace kube-system to check which cluster '$context' is: $(kube_error)"
        finish
    fi
    actual_uid=$(jq -r '.metadata.uid // empty' <<<"$ns_json")
    if [ "$actual_uid" != "$CLUSTER_UID" ]; then
        fail_check wrong-cluster "context '$context' reaches the cluster whose kube-system namespace has UID ${actual_uid:-unknown}, but this stack migrates the one with UID $CLUSTER_UID"
        finish
    fi
fi

# --- kube-proxy mode --------------------------------------------------------------------------
ds_json="" cm_json="" read_ok=1
ds_json=$(kube -n "$KUBE_PROXY_NAMESPACE" get daemonset "$KUBE_PROXY_DAEMONSET" --ignore-not-found -o json) \
    || { read_ok=0; fail_check kube-proxy-mode "cannot read DaemonSet $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_DAEMONSET: $(kube_error)"; }
cm_json=$(kube -n "$KUBE_PROXY_NAMESPACE" get configmap "$KUBE_PROXY_CONFIGMAP" --ignore-not-found -o json) \
    || { read_ok=0; fail_check kube-proxy-mode "cannot read ConfigMap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP: $(kube_error)"; }

if [ "$read_ok" = 1 ]; then
    ds_present=0 cm_present=0
    [ -z "$ds_json" ] || ds_present=1
    [ -z "$cm_json" ] || cm_present=1
    if [ "$ds_present" = 1 ]; then kube_proxy_state=present; elif [ "$cm_present" = 1 ]; then kube_proxy_state=configmap-only; else kube_proxy_state=absent; fi

    if [ "$cm_present" = 1 ] && jq -e '.data | has("config.conf")' <<<"$cm_json" >/dev/null 2>&1; then
        # KubeProxyConfiguration YAML: top-level `mode: ""|iptables|ipvs|nftables` (empty means iptables).
        kube_proxy_mode=$(jq -r '.data["config.conf"]' <<<"$cm_json" \
            | sed -n 's/^mode:[[:space:]]*//p' | head -n 1 | sed 's/[[:space:]]*#.*$//; s/[[:space:]]*$//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/')
        mode_source="configmap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP config.conf"
        [ -n "$kube_proxy_mode" ] || kube_proxy_mode=iptables
    elif [ "$ds_present" = 1 ]; then
        ds_words=$(jq -r '.spec.template.spec.containers[]? | ((.command // []) + (.args // []))[]' <<<"$ds_json" 2>/dev/null || true)
        flag_mode=$(awk '/^--proxy-mode=/ { sub(/^--proxy-mode=/, ""); print; exit } prev == "--proxy-mode" { print; exit } { prev = $0 }' <<<"$ds_words")
        if [ -n "$flag_mode" ]; then
            kube_proxy_mode=$flag_mode
            mode_source="daemonset $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_DAEMONSET --proxy-mode"
        elif grep -qE '^--config(=|$)' <<<"$ds_words"; then
            fail_check kube-proxy-mode "kube-proxy reads a --config file but ConfigMap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP has no config.conf; set cluster.kubeProxy.configMap to the ConfigMap that holds it"
        else
            kube_proxy_mode=iptables
            mode_source="daemonset $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_DAEMONSET (no --proxy-mode, no --config: iptables)"
        fi
    elif [ "$cm_present" = 1 ]; then
        fail_check kube-proxy-mode "ConfigMap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP has no config.conf key, so kube-proxy's mode is unknown"
    fi

    case "$kube_proxy_state/$kube_proxy_mode" in
        absent/*) log "kube-proxy is already absent (no DaemonSet $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_DAEMONSET, no ConfigMap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP): nothing to remove" ;;
        */iptables | */ipvs | */nftables) log "kube-proxy $kube_proxy_state, mode $kube_proxy_mode (from $mode_source)" ;;
        */) ;;
        *) fail_check kube-proxy-mode "kube-proxy mode '$kube_proxy_mode' (from $mode_source) is not one this migration knows (iptables, ipvs, nftables)" ;;
    esac
fi

# --- IPVS with Cilium 1.19 (cilium/cilium#44464) ---------------------------------------------
# What the upstream evidence says (README "kube-proxy in IPVS mode and Cilium 1.19"):
# - the issue is filed against ">= v1.19.0 and < v1.20.0", reproduced upgrading 1.18 -> 1.19.0 and
#   1.19.1, and on fresh 1.19 installs once agents restart (comment of 2026-07-04);
# - cause: the agents' build-config init container runs without a DaemonConfig, so the k8s client
#   host-firewall bypass (pkg/k8s/client/hostfirewallbypass, flag enable-k8s-host-firewall-bypass,
#   default true and gated on the host firewall only through DaemonConfig since cilium/cilium#40942;
#   an older stored source, after cilium/cilium#40691, defaults it to false) marks its API server
#   connections with the proxy egress mark, which kube-proxy's IPVS path does not get through;
# - the one fix proposed (cilium/cilium#46819, Helm gating the flag on hostFirewall.enabled) was closed
#   unmerged; the maintainer's answer: the flag is deliberately hidden, pass it yourself;
# - no 1.19.x release note names the issue, so no 1.19 release with a fix is confirmed.
# So every 1.19.x is refused, and >= 1.20 is only warned about (neither affected nor fixed is confirmed):
# the verdict (IPVS_HANG) is computed from the version in components/ciliumVersions/ciliumVersions.ts.
# IPVS state (kube-ipvs0, virtual servers) outlives a deleted DaemonSet, so a ConfigMap that still
# says ipvs is refused as well.
if [ "$kube_proxy_mode" = ipvs ]; then
    case "$IPVS_HANG" in
        refuse) fail_check ipvs-cilium-44464 "kube-proxy runs in IPVS mode and the target Cilium is $CILIUM_VERSION: $IPVS_HANG_MINOR agents hang in Init (build-config cannot reach the API server) with kube-proxy in IPVS mode ($IPVS_ISSUE; no $IPVS_HANG_MINOR release with a fix is confirmed). Either switch kube-proxy to iptables mode first (ConfigMap $KUBE_PROXY_NAMESPACE/$KUBE_PROXY_CONFIGMAP config.conf mode: iptables, restart its DaemonSet, and remove the IPVS state it leaves on each node: kube-ipvs0 and its virtual servers) and re-run, or migrate with Cilium $IPVS_SAFE_MINOR until a fixed release is confirmed in $IPVS_ISSUE" ;;
        warn) warn_check ipvs-cilium-44464-unconfirmed "kube-proxy runs in IPVS mode and the target Cilium is $CILIUM_VERSION: $IPVS_ISSUE (agents hang in Init with kube-proxy in IPVS mode) hit every $IPVS_HANG_MINOR release and no fix is confirmed for $CILIUM_VERSION either; try one node first, or switch kube-proxy to iptables mode before migrating" ;;
    esac
fi

# --- NodePort on the keepalived VIP -----------------------------------------------------------
for vip in "${vips[@]}"; do
    if [ -n "$K8S_SERVICE_HOST" ] && [ "${vip,,}" = "${K8S_SERVICE_HOST,,}" ]; then api_server_on_vip=1; fi
done
if [ "$api_server_on_vip" = 1 ]; then
    log "k8sServiceHost $K8S_SERVICE_HOST is a keepalived VIP (agents reach the API server through it; not a NodePort)"
fi
for vip in "${vips[@]}"; do
    if [[ ",${NODEPORT_VIPS_SERVED,,}," == *",${vip,,},"* ]]; then
        log "NodePorts will be served on the keepalived VIP $vip (cilium.nodePortAddresses covers it)"
    else
        unserved_vips+=("$vip")
    fi
done
if [ "${#unserved_vips[@]}" -gt 0 ]; then
    if services_json=$(kube get services -A -o json); then
        mapfile -t nodeport_services < <(jq -r '.items[]
            | select(.spec.type == "NodePort" or (.spec.type == "LoadBalancer" and .spec.allocateLoadBalancerNodePorts != false))
            | "\(.metadata.namespace)/\(.metadata.name)"' <<<"$services_json" 2>/dev/null || true)
        if [ "${#nodeport_services[@]}" -gt 0 ]; then
            shown=$(printf '%s, ' "${nodeport_services[@]:0:10}")
            warn_check nodeport-on-vip "${#nodeport_services[@]} Service(s) allocate node ports (${shown%, }$( [ "${#nodeport_services[@]}" -le 10 ] || echo ", ...")); after the migration they answer on node addresses but NOT on the keepalived VIP(s) $(IFS=,; echo "${unserved_vips[*]}") ($NODEPORT_VIP_ISSUE): add each VIP (as /32 or /128) and the node networks to cilium.nodePortAddresses, or point clients at node addresses or a load balancer"
        fi
    else
        warn_check nodeport-on-vip "could not list Services to check for NodePorts on the keepalived VIP(s) ($NODEPORT_VIP_ISSUE): $(kube_error)"
    fi
fi

finish
