#!/usr/bin/env bash
# preview-state-import.sh STACK EXPORT_FILE BACKEND_DIR: makes a throwaway copy of STACK for a
# preview, from the redacted export (redact-state.sh, fetched by preview-state-fetch.sh; no file: an
# empty stack, see preview-state-fetch.sh --missing-ok):
#   - a local backend in BACKEND_DIR (the job's temporary directory), never the real state;
#   - a new random passphrase, written to GITHUB_ENV (masked) for the preview step: it opens
#     nothing but this copy;
#   - Pulumi.STACK.yaml of this checkout without the real stack's encryptionsalt and `secure:`
#     values (only the real passphrase opens those: with a salt present `stack init` uses it and fails
#     "incorrect passphrase", pkg/secrets/passphrase/manager.go NewPromptingPassphraseSecretsManager;
#     the program reads no secret but sshPrivateKey);
#   - the export imported with its secrets_providers pointing at the new stack's salt: `stack import`
#     builds the secrets manager from that state (pulumi/pulumi pkg/cmd/pulumi/stack/stack_import.go,
#     DeserializeUntypedDeployment) and re-encrypts the export's plaintext secrets with it when it
#     saves (pkg/cmd/pulumi/stack/io.go SaveSnapshot; passphrase state is {"salt": ...},
#     pkg/secrets/passphrase/manager.go);
#   - sshPrivateKey set to the placeholder redact-state.sh put in the state's connections.
# Needs pulumi, jq, node (with this repository's node_modules) and openssl.
set -euo pipefail

readonly STACK="${1:?usage: preview-state-import.sh STACK EXPORT_FILE BACKEND_DIR}"
readonly EXPORT_FILE="${2:?usage: preview-state-import.sh STACK EXPORT_FILE BACKEND_DIR}"
readonly BACKEND_DIR="${3:?usage: preview-state-import.sh STACK EXPORT_FILE BACKEND_DIR}"
readonly PREVIEW_SSH_KEY_PLACEHOLDER="preview-has-no-ssh-key"
[[ "$STACK" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "preview-state-import: bad stack name '$STACK'" >&2; exit 2; }
stack_file="Pulumi.$STACK.yaml"
[[ -f "$stack_file" ]] || { echo "preview-state-import: no $stack_file in $(pwd)" >&2; exit 1; }

umask 077
rm -rf "$BACKEND_DIR"
mkdir -p "$BACKEND_DIR"
PULUMI_CONFIG_PASSPHRASE="$(openssl rand -hex 32)"
export PULUMI_CONFIG_PASSPHRASE
if [[ -n "${GITHUB_ENV:-}" ]]; then
    echo "::add-mask::$PULUMI_CONFIG_PASSPHRASE"
    echo "PULUMI_CONFIG_PASSPHRASE=$PULUMI_CONFIG_PASSPHRASE" >>"$GITHUB_ENV"
fi

node -e '
    const fs = require("node:fs");
    const YAML = require("yaml");
    const file = process.argv[1];
    const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"));
    for (const key of ["encryptionsalt", "secretsprovider", "encryptedkey"]) doc.delete(key);
    const config = doc.get("config");
    if (YAML.isMap(config)) {
        for (const item of [...config.items]) {
            if (YAML.isMap(item.value) && item.value.has("secure")) config.delete(item.key);
        }
    }
    fs.writeFileSync(file, doc.toString());
' "$stack_file"

pulumi login "file://$BACKEND_DIR"
pulumi stack init "$STACK" --secrets-provider passphrase
if [[ ! -f "$EXPORT_FILE" ]]; then
    echo "preview-state-import: no $EXPORT_FILE (nothing published yet): the preview starts from an empty stack" >&2
else
    salt="$(node -e 'console.log(require("yaml").parse(require("node:fs").readFileSync(process.argv[1], "utf8")).encryptionsalt ?? "")' "$stack_file")"
    [[ -n "$salt" ]] || { echo "preview-state-import: pulumi stack init wrote no encryptionsalt to $stack_file" >&2; exit 1; }
    jq --arg salt "$salt" '.deployment.secrets_providers = {type: "passphrase", state: {salt: $salt}}' "$EXPORT_FILE" >"$BACKEND_DIR/import.json"
    pulumi stack import --stack "$STACK" --file "$BACKEND_DIR/import.json"
    rm -f "$BACKEND_DIR/import.json"
fi
printf '%s' "$PREVIEW_SSH_KEY_PLACEHOLDER" | pulumi config set --secret --stack "$STACK" sshPrivateKey
echo "preview-state-import: $STACK copied into file://$BACKEND_DIR for the preview" >&2
