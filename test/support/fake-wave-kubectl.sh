#!/usr/bin/env bash
# Test stand-in for `kubectl` for the wave scripts: answers from $FAKE_WAVE_STATE (see fakeWaveCluster.ts).
set -euo pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
root="$(cd "$here/../.." && pwd)"
exec node --import "$root/node_modules/tsx/dist/loader.mjs" "$here/fakeWaveCluster.ts" "$@"
