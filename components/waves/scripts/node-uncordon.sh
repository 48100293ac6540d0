#!/usr/bin/env bash
# node-uncordon.sh: makes NODE schedulable again after its wave (and is the delete of node-drain.sh).
# Environment: NODE (required); KUBECONFIG, KUBECTL_CONTEXT.
# stdout: one JSON line (ok, node). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-uncordon
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE
kc uncordon "$NODE" >&2 || fail "could not uncordon $NODE"
jq -cn --arg node "$NODE" '{ok: true, node: $node}'
