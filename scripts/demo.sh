#!/usr/bin/env bash
# The tsem workflow on a real workload: learn a model of a small C build (a shell pipeline plus
# make -j2 with gcc), seal it as a canary, enforce it, and watch an out-of-model action be denied.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p tsem-cli
tsem="$PWD/target/release/tsem"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp samples/cbuild/* "$work"
cd "$work"
build='sort words.txt | uniq -c | wc -l > /dev/null && make -s -j2 && ./hello && rm -f *.o hello'
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$1"; }

echo "== 1. learn: run the build under tsem and write its model"
"$tsem" run --learn -o build.model --summary-json learn.json -- sh -c "$build"
echo "   learned $(grep -c '^state' build.model) points, state $(state learn.json)"

echo "== 2. seal: the same build again as a canary; out-of-model events are recorded, not denied"
"$tsem" run --seal --model build.model --forensics forensics.json --summary-json seal.json -- sh -c "$build"
echo "   forensic events: $(python3 -c 'import json; print(json.load(open("seal.json"))["forensics_events"])')"

echo "== 3. enforce: the build runs as learned, with the same state"
"$tsem" run --enforce --model build.model --summary-json enforce.json -- sh -c "$build"
echo "   state $(state enforce.json)"

echo "== 4. enforce: the build plus a read it never did while learning"
if "$tsem" run --enforce --model build.model --forensics denied.json -- sh -c "$build; cat /etc/passwd > /dev/null"; then
    echo "   unexpected: the read was allowed" >&2
    exit 1
fi
echo "   denied; explained against the learning run:"
"$tsem" run --learn --trajectory learned.trajectory -- sh -c "$build" > /dev/null
"$tsem" replay --model build.model --explain learned.trajectory denied.json | sed -n '/^forensic:/,$p' | sed 's/^/   /'
