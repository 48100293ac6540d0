#!/usr/bin/env bash
# redact-state.sh: turns `pulumi stack export --show-secrets` (stdin) into the copy of the state that
# pull-request previews may read (stdout). Runs only in up.yml's `up` job, on main, after the
# environment approval: the one job that holds the passphrase.
#
# Pulumi writes a secret in such an export as {"4dabf18193072939515e22adb298388d":
# "1b47061264138c4ac30d75fd1eb44270", "plaintext": "<the value as JSON>"} (pulumi/pulumi
# pkg/resource/stack/deployment.go, SerializePropertyValue with showSecrets). This script:
#   - replaces the value of every property named privateKey, privateKeyPassword or password
#     (secret or not, at any depth, also inside a secret's JSON) with PREVIEW_SSH_KEY_PLACEHOLDER,
#     the same text the preview gives the program as sshPrivateKey, so the preview shows no change
#     on the connections when nothing changed;
#   - fails, naming the resources, if any other secret remains outside random.RandomBytes (whose
#     bytes are the Maglev seed, already plain in the Helm release's values): a new kind of secret
#     must be looked at before it is handed to pull requests, never passed on by default;
#   - drops the export's secrets_providers: the preview imports it into a throwaway stack whose
#     own passphrase provider re-encrypts the plaintext (see preview-state-import.sh).
set -euo pipefail

readonly PREVIEW_SSH_KEY_PLACEHOLDER="preview-has-no-ssh-key"

jq --arg placeholder "$PREVIEW_SSH_KEY_PLACEHOLDER" '
    def sig: "4dabf18193072939515e22adb298388d";
    def secret_sig: "1b47061264138c4ac30d75fd1eb44270";
    def is_secret: type == "object" and .[sig] == secret_sig;
    def credential_key: . == "privateKey" or . == "privateKeyPassword" or . == "password";
    def redact:
        if is_secret then
            if has("plaintext") then .plaintext |= (fromjson | redact | tojson)
            else error("a secret without plaintext: export with --show-secrets") end
        elif type == "object" then
            with_entries(
                if (.key | credential_key) then
                    .value = (if (.value | is_secret) then {(sig): secret_sig, plaintext: ($placeholder | tojson)} else $placeholder end)
                else .value |= redact end)
        elif type == "array" then map(redact)
        else . end;
    # Secrets whose secrecy a credential does not explain: a string other than the placeholder, or a
    # structure with text in it but no credential key (a structure holding a credential is secret as a
    # whole because of it, and the credential is already replaced).
    def has_credential: [.. | objects | keys[] | select(credential_key)] | length > 0;
    def leaked: [.. | select(is_secret) | .plaintext | fromjson
        | select(if type == "string" then . != $placeholder else (has_credential | not) and ([.. | strings] | length > 0) end)];

    .deployment |= redact
    | del(.deployment.secrets_providers)
    | ([(.deployment.resources // [])[] | select(.type != "random:index/randomBytes:RandomBytes") | select((leaked | length) > 0) | .urn]) as $left
    | if ($left | length) > 0 then
        error("secrets other than credentials remain in: \($left | join(", ")); extend redact-state.sh before previews may see them")
      else . end
'
