#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# preflight-lib.sh: the JSON report helpers both preflight scripts share. Run as a file, a script
# sources it; embedded as command text, the source line is replaced by this text
# (components/commands/scripts.ts). Plain bash: nodes need not have jq, and the operator's
# report must print even when jq is the missing tool.
#
# Expects log MESSAGE (the script's own prefix). Provides:
#   json_str TEXT, json_bool 0|1, json_list ITEM...   JSON literals
#   fail CHECK MESSAGE, warn CHECK MESSAGE              collect into failures_json / warnings_json
#   failure_count                                       how many fail calls so far

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/\\t}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')
    printf '"%s"' "$s"
}
json_bool() { if [ "$1" = 1 ]; then printf true; else printf false; fi; }
json_list() {
    local out="" item
    for item in "$@"; do out+="${out:+,}$(json_str "$item")"; done
    printf '[%s]' "$out"
}

failures_json="" warnings_json="" failure_count=0
fail() {
    failure_count=$((failure_count + 1))
    failures_json+="${failures_json:+,}{\"check\":$(json_str "$1"),\"message\":$(json_str "$2")}"
    log "FAIL $1: $2"
}
warn() {
    warnings_json+="${warnings_json:+,}{\"check\":$(json_str "$1"),\"message\":$(json_str "$2")}"
    log "WARN $1: $2"
}
