#!/usr/bin/env bash
# node-step-kept.sh: the update of the drain and uncordon steps. A node is drained and uncordoned
# once, on its wave; a later change of those steps (a new script digest, another DRAIN_TIMEOUT)
# only records the new delete and changes nothing on the cluster.
# Environment: NODE. stdout: one JSON line (ok, node, changed).
set -euo pipefail
printf '{"ok":true,"node":"%s","changed":false}\n' "${NODE:-}"
