#!/usr/bin/env bash
# The whole test suite: unit, property, conformance and integration tests of every crate.
# Conformance data is read from ../shared (override with TSEM_SHARED).
# Run as root, it then runs the sensor's and `tsem run`'s tests again as an unprivileged user
# (nobody), because the sensor must work rootless.
# Missing Debian packages are installed first when run as root (scripts/setup); without the TPM
# packages the TPM tests skip, each with one line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
export TSEM_SHARED="${TSEM_SHARED:-$(cd .. && pwd)/shared}"
if [ ! -d "$TSEM_SHARED/conformance" ]; then
    echo "test.sh: conformance data not found at $TSEM_SHARED (clone next to shared/, or set TSEM_SHARED)" >&2
    exit 1
fi
tpm=$(scripts/setup test | tail -n 1)
# Test files live on the repository's filesystem, not in /tmp: where /tmp is a tmpfs (Debian 13,
# many containers) file digests follow TSEM's pseudo-filesystem rule (zero), which would change
# what the content attacks test.
test_tmp="$PWD/target/test-tmp"
mkdir -p "$test_tmp" && chmod 1777 "$test_tmp"
export TMPDIR="$test_tmp"
features=()
if [ "$tpm" = tpm=yes ]; then
    features=(--features tsem-cli/tpm)
fi
cargo test --workspace --locked "${features[@]+"${features[@]}"}" "$@"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    echo "test.sh: sensor and run tests again as nobody (uid 65534)"
    unpriv=$(mktemp -d "$test_tmp/nobody.XXXXXX") && chmod 1777 "$unpriv"
    trap 'rm -rf "$unpriv"' EXIT
    exes=$(cargo test --locked -p tsem-sensor -p tsem-cli "${features[@]+"${features[@]}"}" --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*/deps/\(tsem_sensor\|open\|lifecycle\|start\|failclosed\|run_cli\|attack_[a-z_]*\|backstop\|learning\|learning_workloads\|learning_prctl\|raw_bytes_cli\|credentials\|control\|control_export\|first_contact\|attach\|tma\|tma_serial\|tma_vsock\|kernel_backend\|seal_tpm\|verifier_tpm\)-[^"]*"' \
        | cut -d'"' -f4)
    [ -n "$exes" ] || { echo "test.sh: no sensor test binaries found" >&2; exit 1; }
    for exe in $exes; do
        if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$exe"; then
            echo "test.sh: uid 65534 cannot reach $exe (a parent directory is not traversable); clone elsewhere" >&2
            exit 1
        fi
        echo "test.sh: $(basename "$exe") as nobody"
        (cd "$unpriv" && TSEM_TEST_DIR="$unpriv" timeout 900 setpriv --reuid=65534 --regid=65534 --clear-groups "$exe")
    done
fi
