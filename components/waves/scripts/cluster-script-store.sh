#!/usr/bin/env bash
# cluster-script-store.sh writes the scripts the wave steps run into the cluster script store.
#
# The store is one immutable ConfigMap per script in kube-system, named cilium-kpr-script-<sha256 of
# the script>, the script in data key "script", labelled STORE_LABEL=true. The per-node wave steps carry
# no script, only a few lines that fetch theirs by digest, check its sha256 and run it
# (components/commands/clusterScriptStore.ts), so the store only ever adds: a delete recorded in state
# before a script changed still finds the exact script it was created with.
#
# stdin: {"scripts":[{"name":..., "sha256":..., "text":...}]} (the step's stdin, written by the program).
# Each text is checked against its sha256 first. A ConfigMap at a store name without STORE_LABEL is not
# ours: refused, nothing written over it. One of ours whose script no longer has its name's sha256 (deleted
# and re-created by hand: `immutable` forbids editing data, Kubernetes docs "Immutable ConfigMaps") is
# replaced. Finally every store ConfigMap is labelled WRITER_LABEL=<this run's id>, printed in the
# summary: the store's delete (cluster-script-store-remove.sh) removes only ConfigMaps with its run's id,
# so when the step is replaced (new create first, then the old delete) the old delete removes nothing.
#
# Environment: KUBECONFIG, KUBECTL_CONTEXT, CLUSTER_UID.
# stdout: one JSON line (ok, writer, created, present, replaced: script names). stderr: progress.
set -euo pipefail

readonly SCRIPT=cluster-script-store
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

# shellcheck source=SCRIPTDIR/script-store-names.sh
source "$(dirname "${BASH_SOURCE[0]}")/script-store-names.sh"

cat >"$workdir/in.json"
count="$(jq -er '.scripts | length' "$workdir/in.json" 2>/dev/null)" || fail 'stdin is not the store JSON ({"scripts":[{"name","sha256","text"}]})'
writer="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
created=() present=() replaced=()

for ((i = 0; i < count; i++)); do
    name="$(jq -r --argjson i "$i" '.scripts[$i].name // ""' "$workdir/in.json")"
    sha="$(jq -r --argjson i "$i" '.scripts[$i].sha256 // ""' "$workdir/in.json")"
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]] || fail "script ${name:-#$i}: '$sha' is not a sha256 digest"
    jq -j --argjson i "$i" '.scripts[$i].text // ""' "$workdir/in.json" >"$workdir/script"
    [[ "$(sha256sum <"$workdir/script")" == "$sha  -" ]] || fail "script $name: its text does not have sha256 $sha; nothing of it was written"
    cm="$STORE_CONFIGMAP_PREFIX$sha"

    kc -n "$STORE_NAMESPACE" get configmap "$cm" -o json --ignore-not-found >"$workdir/cm.json" 2>"$workdir/err" \
        || fail "cannot read configmap/$cm in $STORE_NAMESPACE: $(tail -n 1 "$workdir/err")"
    if [[ -s "$workdir/cm.json" ]]; then
        jq -e --arg l "$STORE_LABEL" '(.metadata.labels // {})[$l] == "true"' "$workdir/cm.json" >/dev/null \
            || fail "configmap/$cm in $STORE_NAMESPACE was not created by this program (it lacks label $STORE_LABEL=true); nothing was written over it"
        if [[ "$(jq -j '.data.script // ""' "$workdir/cm.json" | sha256sum)" == "$sha  -" ]]; then
            present+=("$name")
            continue
        fi
        log "configmap/$cm does not hold the script of sha256 $sha (changed by hand); re-creating it"
        kc -n "$STORE_NAMESPACE" delete configmap "$cm" >&2 2>"$workdir/err" || fail "cannot delete the altered configmap/$cm: $(tail -n 1 "$workdir/err")"
        replaced+=("$name")
    else
        created+=("$name")
    fi
    jq -n --rawfile text "$workdir/script" --arg cm "$cm" --arg ns "$STORE_NAMESPACE" --arg l "$STORE_LABEL" --arg name "$name" --arg sha "$sha" '{
        apiVersion: "v1", kind: "ConfigMap",
        metadata: {name: $cm, namespace: $ns,
            labels: {($l): "true", "app.kubernetes.io/managed-by": "cilium-kpr-migration"},
            annotations: {"cilium-kpr-migration/purpose": "cluster script \($name).sh (sha256 \($sha)) run by the wave steps"}},
        immutable: true,
        data: {script: $text}}' >"$workdir/cm-new.json"
    kc create -f "$workdir/cm-new.json" >&2 2>"$workdir/err" || fail "cannot create configmap/$cm in $STORE_NAMESPACE: $(tail -n 1 "$workdir/err")"
    log "stored $name.sh as configmap/$cm"
done

kc -n "$STORE_NAMESPACE" label configmap -l "$STORE_LABEL=true" "$WRITER_LABEL=$writer" --overwrite >&2 2>"$workdir/err" \
    || fail "cannot label the store's ConfigMaps with this run's id: $(tail -n 1 "$workdir/err")"

list() { if (($# > 0)); then printf '%s\n' "$@" | jq -R . | jq -cs .; else echo '[]'; fi; }
jq -cn --arg writer "$writer" --argjson created "$(list "${created[@]}")" --argjson present "$(list "${present[@]}")" \
    --argjson replaced "$(list "${replaced[@]}")" '{ok: true, writer: $writer, created: $created, present: $present, replaced: $replaced}'
