#!/usr/bin/env bash
# shellcheck shell=bash
# env-checks.sh, sourced by cluster-lib.sh and wave-lib.sh: need_* VAR... calls their `fail` unless each $VAR fits.
need_match() {
    local re="$1" what="$2" var
    shift 2
    for var in "$@"; do
        [[ "${!var:-}" =~ $re ]] || fail "$var must be $what (got '${!var:-}')"
    done
}
need_name() { need_match '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$' "a Kubernetes object name" "$@"; }
need_seconds() { need_match '^[1-9][0-9]*$' "a whole number of seconds" "$@"; }
need_selector() { need_match '^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]+$' key=value "$@"; }
