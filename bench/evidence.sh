#!/usr/bin/env bash
# Benchmark: `tsem ima replay` vs `evmctl ima_measurement` on a generated 200 000-entry IMA list, and
# `tsem eventlog replay` vs `tpm2_eventlog` on a generated 5 000-record TCG log. Runs alternate
# (tsem, other, tsem, other, ...) so that drift on a shared machine hits both sides alike; the
# median wall time and median CPU time of each side are reported. Each tool's result is also checked against tsem's, so the
# numbers compare tools that agree.
#
# Needs: cargo, python3, evmctl (Debian ima-evm-utils), tpm2_eventlog (Debian tpm2-tools).
# Installs nothing. Environment: ROUNDS (default 7), IMA_ENTRIES (200000), EVENTS (5000),
# CARGO_TARGET_DIR (where to build; default target/).
set -euo pipefail

ROUNDS=${ROUNDS:-7}
IMA_ENTRIES=${IMA_ENTRIES:-200000}
EVENTS=${EVENTS:-5000}
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
for tool in cargo python3 evmctl tpm2_eventlog; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "bench/evidence.sh: missing: ${missing[*]}" >&2
    echo "  on Debian: apt-get install -y ima-evm-utils tpm2-tools python3" >&2
    exit 1
fi

target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --quiet --release -p tsem-cli --bin tsem && \
    cargo build --quiet --release -p tsem-evidence --example gen_evidence)
tsem=$target/release/tsem
gen=$target/release/examples/gen_evidence

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$gen" ima "$IMA_ENTRIES" "$work/ima.bin"
"$gen" eventlog "$EVENTS" "$work/ev.bin"

# evmctl compares its replay with PCR files; give it tsem's values, so its exit status and
# "Matched" line are a differential check of tsem's sha1 and sha256 PCR 10.
"$tsem" ima replay --json --bank sha1 --bank sha256 "$work/ima.bin" >"$work/ima.json"
python3 - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
r = json.load(open(f"{w}/ima.json"))
assert r["entries"] > 0 and r["template_hash_mismatches"] == 0, r
for bank, size in (("sha1", 20), ("sha256", 32)):
    with open(f"{w}/pcrs_{bank}", "w") as f:
        for i in range(24):
            f.write("PCR-%02d: %s\n" % (i, r["pcrs"][bank].get(str(i), "00" * size).upper()))
EOF
evm=(evmctl ima_measurement --pcrs "sha1,$work/pcrs_sha1" --pcrs "sha256,$work/pcrs_sha256" "$work/ima.bin")
"${evm[@]}" >"$work/evm.out" 2>&1 || { cat "$work/evm.out"; echo "evmctl disagrees with tsem" >&2; exit 1; }
grep -q "Matched per TPM bank" "$work/evm.out" || { cat "$work/evm.out"; exit 1; }
echo "evmctl ima_measurement agrees with tsem on sha1 and sha256 PCR 10"

# tpm2_eventlog prints its replayed PCRs as YAML; they must equal tsem's.
"$tsem" eventlog replay --json "$work/ev.bin" >"$work/ev.json"
tpm2_eventlog "$work/ev.bin" >"$work/tpm2.out" 2>"$work/tpm2.err"
if [[ -s $work/tpm2.err ]]; then cat "$work/tpm2.err" >&2; echo "tpm2_eventlog complained about the generated log" >&2; exit 1; fi
python3 - "$work" <<'EOF'
import json, re, sys
w = sys.argv[1]
ours = json.load(open(f"{w}/ev.json"))["pcrs"]
theirs, bank, in_pcrs = {}, None, False
for line in open(f"{w}/tpm2.out"):
    if line.startswith("pcrs:"):
        in_pcrs = True
        continue
    if not in_pcrs:
        continue
    m = re.match(r"^  (\w+):\s*$", line)
    if m:
        bank = m.group(1)
        continue
    m = re.match(r"^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)", line)
    if m and bank:
        theirs.setdefault(bank, {})[m.group(1)] = m.group(2).lower()
assert theirs == ours, (theirs, ours)
print("tpm2_eventlog agrees with tsem on %d PCR values" % sum(len(v) for v in ours.values()))
EOF

# Alternating runs timed by python3: wall time, and CPU time (user + system, from the children's
# rusage) which is less sensitive to other load on a shared machine. Medians of each.
bench_pair() { # name records other-name -- tsem-cmd... -- other-cmd...
    python3 - "$ROUNDS" "$@" <<'EOF2'
import os, resource, statistics, subprocess, sys, time
rounds, name, records, other = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
rest = sys.argv[6:]
split = rest.index("--")
cmds = [rest[:split], rest[split + 1:]]
def run(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
for c in cmds:
    run(c)  # warm the page cache
wall, cpu = [[], []], [[], []]
for _ in range(rounds):
    for i, c in enumerate(cmds):
        w, u = run(c)
        wall[i].append(w)
        cpu[i].append(u)
mw = [statistics.median(x) for x in wall]
mc = [statistics.median(x) for x in cpu]
print(f"{name:<16} {records:>7} records  wall: tsem {mw[0]*1e3:7.1f} ms ({records/mw[0]:9.0f}/s)  "
      f"{other} {mw[1]*1e3:7.1f} ms ({records/mw[1]:9.0f}/s)  {mw[1]/mw[0]:4.1f}x")
print(f"{'':<16} {'':>7}          cpu:  tsem {mc[0]*1e3:7.1f} ms ({records/mc[0]:9.0f}/s)  "
      f"{other} {mc[1]*1e3:7.1f} ms ({records/mc[1]:9.0f}/s)  {mc[1]/mc[0]:4.1f}x   (medians of {rounds})")
EOF2
}

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
bench_pair "IMA replay" "$IMA_ENTRIES" evmctl -- "$tsem" ima replay --bank sha1 --bank sha256 "$work/ima.bin" -- "${evm[@]}"
bench_pair "event log replay" "$EVENTS" tpm2_eventlog -- "$tsem" eventlog replay "$work/ev.bin" -- tpm2_eventlog "$work/ev.bin"
