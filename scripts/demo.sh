#!/usr/bin/env bash
# The tsem workflow on a real workload: learn a model of a small C build (a shell pipeline plus
# make -j2 with gcc), seal it as a canary, enforce it, and watch an out-of-model action be denied.
# Missing Debian packages (gcc, make) are installed first when run as root (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scripts/setup demo >/dev/null
cargo build --release --locked -q -p tsem-cli
tsem="$PWD/target/release/tsem"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp samples/cbuild/* "$work"
cd "$work"
build='sort words.txt | uniq -c | wc -l > /dev/null && make -s -j2 && ./hello && rm -f *.o hello'
# A field of a --summary-json file (flat JSON written by tsem; no python or jq needed).
field() { sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "$1"; }

echo "== 1. learn: run the build under tsem and write its model"
"$tsem" run --learn -o build.model --summary-json learn.json -- sh -c "$build"
echo "   learned $(grep -c '^state' build.model) points, state $(field learn.json state)"

echo "== 2. seal: the same build again as a canary; out-of-model events are recorded, not denied"
"$tsem" run --seal --model build.model --forensics forensics.json --summary-json seal.json -- sh -c "$build"
echo "   forensic events: $(field seal.json forensics_events)"

echo "== 3. enforce: the build runs as learned, with the same state"
"$tsem" run --enforce --model build.model --summary-json enforce.json -- sh -c "$build"
echo "   state $(field enforce.json state)"

echo "== 4. enforce: the build plus a program it never ran while learning (cat /etc/passwd)"
if "$tsem" run --enforce --model build.model --forensics denied.json -- sh -c "$build; cat /etc/passwd > /dev/null"; then
    echo "   unexpected: the unlearned program ran" >&2
    exit 1
fi
echo "   denied; explained against the learning run:"
"$tsem" run --learn --trajectory learned.trajectory -- sh -c "$build" > /dev/null
"$tsem" replay --model build.model --explain learned.trajectory denied.json | sed -n '/^forensic:/,$p' | sed 's/^/   /'

echo "== 5. model a recorded TSEM trajectory without running anything (the README's command)"
cd "$repo"
cargo run --release --locked -q -p tsem-cli -- replay samples/quickstart.trajectory | sed 's/^/   /'
