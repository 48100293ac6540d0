#!/usr/bin/env bash
# preview-state-fetch.sh STACK OUT_FILE [--missing-ok]: downloads the newest redacted state of STACK
# that up.yml published (artifact "preview-state-STACK", see redact-state.sh) into OUT_FILE.
# Without one it fails, so a pull request never gets a preview that shows every resource as new;
# with --missing-ok (up.yml's preview on main, so that the first `up` can run at all) it warns and
# writes nothing, and preview-state-import.sh starts from an empty stack.
#
# Only an artifact of a `push` run of .github/workflows/up.yml on main is taken: a pull request's own
# workflow run can upload an artifact of the same name, and must not be able to choose what later
# previews compare against. GitHub REST API: "List artifacts for a repository"
# (GET /repos/{owner}/{repo}/actions/artifacts?name=..., newest first, each with workflow_run.id) and
# "Get a workflow run" (GET /repos/{owner}/{repo}/actions/runs/{id}: event, path, head_branch),
# https://docs.github.com/en/rest/actions/artifacts and https://docs.github.com/en/rest/actions/workflow-runs.
#
# Environment: GH_TOKEN (the job's github.token with actions: read), GITHUB_API_URL, GITHUB_REPOSITORY
# (set by the runner).
set -euo pipefail

readonly STACK="${1:?usage: preview-state-fetch.sh STACK OUT_FILE}"
readonly OUT_FILE="${2:?usage: preview-state-fetch.sh STACK OUT_FILE}"
readonly MISSING_OK="${3:-}"
[[ -z "$MISSING_OK" || "$MISSING_OK" == --missing-ok ]] || { echo "preview-state-fetch: unknown option '$MISSING_OK'" >&2; exit 2; }
[[ "$STACK" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "preview-state-fetch: bad stack name '$STACK'" >&2; exit 2; }
: "${GH_TOKEN:?GH_TOKEN must be set}" "${GITHUB_API_URL:?}" "${GITHUB_REPOSITORY:?}"

api="$GITHUB_API_URL/repos/$GITHUB_REPOSITORY"
get() {
    curl -fsS --retry 3 -H "Authorization: Bearer $GH_TOKEN" -H "Accept: application/vnd.github+json" "$@"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

get "$api/actions/artifacts?name=preview-state-$STACK&per_page=50" >"$work/artifacts.json"
while IFS=$'\t' read -r run_id url; do
    get "$api/actions/runs/$run_id" >"$work/run.json"
    if jq -e '.event == "push" and .head_branch == "main" and .path == ".github/workflows/up.yml"' "$work/run.json" >/dev/null; then
        get -L "$url" -o "$work/artifact.zip"
        unzip -p "$work/artifact.zip" "preview-state-$STACK.json" >"$OUT_FILE"
        jq -e '.deployment' "$OUT_FILE" >/dev/null || { echo "preview-state-fetch: the artifact of run $run_id holds no deployment" >&2; exit 1; }
        echo "preview-state-fetch: state of $STACK from up.yml run $run_id" >&2
        exit 0
    fi
    echo "preview-state-fetch: skipping the artifact of run $run_id (not a push of up.yml on main)" >&2
done < <(jq -r '.artifacts[] | select(.expired | not) | [.workflow_run.id, .archive_download_url] | @tsv' "$work/artifacts.json")

if [[ -n "$MISSING_OK" ]]; then
    echo "::warning::no redacted state of $STACK published by up.yml yet: this preview starts from an empty stack and shows every resource as new; the up job's own preview uses the real state"
    exit 0
fi
echo "preview-state-fetch: no redacted state of $STACK published by up.yml on main; previews need one \`up\` first (README, \"Pull-request previews\")" >&2
exit 1
