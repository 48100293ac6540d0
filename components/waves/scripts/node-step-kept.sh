#!/usr/bin/env bash
# node-step-kept.sh: the update of drain and uncordon, which run once, on the node's wave: changes nothing.
set -euo pipefail
printf '{"ok":true,"node":"%s","changed":false}\n' "${NODE:-}"
