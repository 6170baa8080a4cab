#!/usr/bin/env bash
# The whole test suite: unit, property, conformance and integration tests of every crate.
# Conformance data is read from ../shared (override with TSEM_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
export TSEM_SHARED="${TSEM_SHARED:-$(cd .. && pwd)/shared}"
exec cargo test --workspace --locked "$@"
