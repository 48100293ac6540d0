#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# script-store-names.sh: the names of the cluster script store, for the scripts that write, remove and
# observe it (the same values as components/commands/clusterScriptStore.ts; test/waves-script-store.test.ts
# holds them equal). Sourced as a file when run directly; inlined when embedded (components/commands/scripts.ts).
readonly STORE_NAMESPACE=kube-system
readonly STORE_LABEL=cilium-kpr.io/cluster-script-store
readonly WRITER_LABEL=cilium-kpr.io/cluster-script-store-writer
# A store ConfigMap is named STORE_CONFIGMAP_PREFIX<sha256 of its script>.
readonly STORE_CONFIGMAP_PREFIX=cilium-kpr-script-
