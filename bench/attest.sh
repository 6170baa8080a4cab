#!/usr/bin/env bash
# Benchmark: verifications per second of `tsem verify` on the real capture (process_1.json enforced
# under test.model, 196 points): Ed25519-signed attestations, TPM quotes (swtpm, ECDSA P-256 AK),
# and both; RSA 2048 AK quotes. Each verification parses the JSON file and runs every check, including recomputing the
# model's state; nothing is cached between verifications. Prints one JSON line per run.
#
# Needs: cargo, swtpm (Debian swtpm swtpm-tools), libtss2-dev to build. Environment: N (10000),
# PORT (swtpm port, default 24321; PORT+1 is its control port), CARGO_TARGET_DIR, TSEM_SHARED.
set -euo pipefail

N=${N:-10000}
PORT=${PORT:-24321}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${TSEM_SHARED:-$root/../shared}
proc=$shared/conformance/tsem/process
command -v swtpm >/dev/null || { echo "bench/attest.sh: swtpm missing (apt-get install -y swtpm swtpm-tools)" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --quiet --release -p tsem-cli --bin tsem --bin tsem-tpm)
tsem=$target/release/tsem

work=$(mktemp -d)
swtpm_pid=
cleanup() { [[ -n $swtpm_pid ]] && kill "$swtpm_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir "$work/tpm"
swtpm socket --tpm2 --server "type=tcp,port=$PORT,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1" \
    --flags not-need-init,startup-clear --tpmstate "dir=$work/tpm" &
swtpm_pid=$!
sleep 0.5

nonce=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
"$tsem" keygen -o "$work/key" 2>/dev/null
"$tsem" attest --nonce "$nonce" --key "$work/key" --model "$proc/test.model" \
    -o "$work/signed.json" "$proc/process_1.json" 2>/dev/null
"$tsem" attest --nonce "$nonce" --key "$work/key" --model "$proc/test.model" \
    --tpm "swtpm:host=127.0.0.1,port=$PORT" --ak-out "$work/ak.pem" \
    -o "$work/quoted.json" "$proc/process_1.json" 2>/dev/null

"$tsem" attest --nonce "$nonce" --key "$work/key" --model "$proc/test.model" \
    --tpm "swtpm:host=127.0.0.1,port=$PORT" --ak-alg rsa --ak-out "$work/rsa-ak.pem" \
    -o "$work/rsa-quoted.json" "$proc/process_1.json" 2>/dev/null

v() { "$tsem" verify --model "$proc/test.model" --nonce "$nonce" --bench "$N" "$@" | tail -1; }
v --key "$work/key.pub" "$work/signed.json"
v --ak "$work/ak.pem" "$work/quoted.json"
v --ak "$work/ak.pem" --key "$work/key.pub" "$work/quoted.json"
v --ak "$work/rsa-ak.pem" "$work/rsa-quoted.json"
