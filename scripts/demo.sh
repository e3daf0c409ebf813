#!/usr/bin/env bash
# make demo: run byob-agent's main job against local emulators, then stop them.
# Starts a real S3 server (SeaweedFS) with a KMS emulator (local-kms) and the project's W&B SCIM
# emulator, all on 127.0.0.1, plus Azurite (Microsoft's Azure Blob emulator); runs plan, sync, doctor,
# and sync again with config.example.yaml; then starts the daemon and prints its status page's URL. In
# a terminal it keeps everything up until Enter or Ctrl-C; without one (CI) it stops at once.
# BIN names another directory of built binaries (default bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-$PWD/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/byob-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_line FILE PATTERN: wait (up to 60 s) until FILE has a line matching PATTERN.
wait_line() {
	for _ in $(seq 600); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for '$2' in $1" >&2
	cat "$1" >&2 || true
	exit 1
}

say "Starting SeaweedFS (S3), local-kms and Azurite on 127.0.0.1"
"$bin/devenv" -dir "$work/backends" -logs "$work/backends.log" >"$work/env.sh" 2>"$work/devenv.err" &
pids+=($!)
wait_line "$work/devenv.err" '^ready'
# shellcheck disable=SC1091
source "$work/env.sh"

say "Starting the W&B SCIM emulator"
export WANDB_API_KEY="demo-api-key-$RANDOM$RANDOM"
"$bin/wandb-emulator" -api-key "$WANDB_API_KEY" -s3-endpoint "$AWS_ENDPOINT_URL_S3" -s3-region "$AWS_REGION" \
	-s3-access-key "$AWS_ACCESS_KEY_ID" -s3-secret-key "$AWS_SECRET_ACCESS_KEY" \
	-azure-endpoint "$AZURE_BLOB_ENDPOINT" -azure-account "$AZURE_STORAGE_ACCOUNT" -azure-key "$AZURE_STORAGE_KEY" \
	>"$work/emulator.out" 2>"$work/emulator.log" &
pids+=($!)
wait_line "$work/emulator.out" '^listening on '
export WANDB_SCIM_URL
WANDB_SCIM_URL=$(sed -n 's/^listening on //p' "$work/emulator.out" | head -1)
emu=${WANDB_SCIM_URL%/scim}

# config.example.yaml, pointed at the local servers.
# devenv exported AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_KMS, AWS_REGION, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, BYOB_AWS_ACCOUNT_ID, and AZURE_BLOB_ENDPOINT, AZURE_STORAGE_ACCOUNT,
# AZURE_STORAGE_KEY, which config.example.yaml reads as they are.
export AWS_S3_ENDPOINT=$AWS_ENDPOINT_URL_S3 AWS_S3_PATH_STYLE=true AWS_KMS_ENDPOINT=$AWS_ENDPOINT_URL_KMS \
	AWS_ACCOUNT_ID=$BYOB_AWS_ACCOUNT_ID \
	MINIO_ENDPOINT=$AWS_ENDPOINT_URL_S3 MINIO_ACCESS_KEY=$AWS_ACCESS_KEY_ID MINIO_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
	BYOB_STATE=$work/state.db
agent() { "$bin/byob-agent" "$@" --config config.example.yaml; }

say "byob-agent config validate"
agent config validate

say "byob-agent plan"
agent plan

say "byob-agent sync"
agent sync

say "Teams the W&B emulator now has (with the storageBucket each was created with)"
curl -fsS "$emu/_emulator/groups"
echo

say "byob-agent state ls"
agent state ls

say "byob-agent doctor: every bucket against W&B's requirements, with a probe object"
agent doctor

say "byob-agent file-stores: GORILLA_SUPPORTED_FILE_STORES for self-managed W&B (holds secrets: written to a 0600 file)"
agent file-stores --output "$work/file-stores"
ls -l "$work/file-stores" | awk '{print $1, $NF}'

before=$(curl -fsS "$emu/_emulator/counts")
say "byob-agent sync, again: nothing to do"
agent sync
after=$(curl -fsS "$emu/_emulator/counts")
echo "W&B requests before the second sync: $before"
echo "W&B requests after it:               $after"

say "byob-agent run: the daemon, with its status page"
# config.example.yaml with the daemon's listener and a viewer token of the demo's own.
export BYOB_VIEWER_TOKEN
BYOB_VIEWER_TOKEN=demo-viewer-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
{ cat config.example.yaml; printf '\nserver:\n  listen: 127.0.0.1:0\n  viewerTokens: ["${BYOB_VIEWER_TOKEN}"]\n'; } >"$work/daemon.yaml"
"$bin/byob-agent" run --config "$work/daemon.yaml" 2>"$work/daemon.log" &
pids+=($!)
wait_line "$work/daemon.log" '"msg":"listening"'
addr=$(sed -n 's/.*"msg":"listening".*"addr":"\([^"]*\)".*/\1/p' "$work/daemon.log" | head -1)
wait_line "$work/daemon.log" '"msg":"reconciled"'
echo "Status page: http://$addr/   (log in with the token $BYOB_VIEWER_TOKEN)"
if [ -t 0 ]; then
	read -r -p "The daemon and the emulators keep running: press Enter or Ctrl-C to stop them. " _ || true
else
	echo "stdin is not a terminal: stopping at once"
fi

say "Done; stopping the daemon and the emulators"
