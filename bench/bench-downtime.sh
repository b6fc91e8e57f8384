#!/bin/sh
# bench-downtime: downtime of a live migration at three guest dirty rates,
# against the least downtime that migration could have had (the bytes it
# sent after the stop at the rate its pre-copy measured: the report's
# downtime_min_ms). The issue's target is downtime <= 2 x that + 10 ms.
#
#   bench/bench-downtime.sh [--rounds N] [--ram SIZE] [--fill SIZE] [VFMIG...]
#
# Each VFMIG (default build/src/cli/vfmig) is run in turn, round by round,
# so that two builds are compared in one run on the same machine. Every
# migration: a regs device and a `vfmig vmm` on each side (real processes),
# the source's guest filling --fill of its RAM, the destination verifying
# after the resume (`--verify after`, so that the check is not downtime)
# and the migration's verdict required. Dirty rates: the guest stamps 4
# pages per iteration every 20000, 2000 and 200 us (about 0.8, 8 and 80
# MB/s when it keeps up).
set -u
rounds=3 ram=512M fill=256M
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--ram) ram=$2; shift 2 ;;
	--fill) fill=$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- build/src/cli/vfmig
D=$(mktemp -d /tmp/vfmig-bench-dt-XXXXXX)
pids=""
stop() { for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done; pids=""; }
trap 'stop; rm -rf "$D"' EXIT
wait_for() { for _ in $(seq 500); do [ -e "$1" ] && return 0; sleep 0.02; done
	echo "bench-downtime: no $1" >&2; exit 1; }
port=$((20000 + $$ % 20000))

# one VFMIG INTERVAL -> prints the report's JSON line
one() {
	V=$1 iv=$2
	rm -f "$D"/*
	"$V" device regs --socket-path "$D/s.sock" --quiet & pids="$pids $!"
	"$V" device regs --socket-path "$D/d.sock" --quiet & pids="$pids $!"
	wait_for "$D/s.sock"; wait_for "$D/d.sock"
	"$V" vmm --device "$D/s.sock" --ram "$ram" --fill "$fill" \
		--guest-interval-us "$iv" --control "$D/s.ctl" --quiet & pids="$pids $!"
	port=$((port + 1))
	"$V" vmm --device "$D/d.sock" --ram "$ram" --guest-interval-us "$iv" \
		--control "$D/d.ctl" --quiet --incoming "tcp:127.0.0.1:$port" \
		--verify after & pids="$pids $!"
	wait_for "$D/s.ctl"; wait_for "$D/d.ctl"
	sleep 1 # the fill, and the guest running for a while
	"$V" migrate --control "$D/s.ctl" "tcp:127.0.0.1:$port" --json | tail -1
	stop
}

out=$D/../vfmig-bench-dt-$$.txt
: >"$out"
for r in $(seq "$rounds"); do
	for iv in 20000 2000 200; do
		i=0
		for V in "$@"; do
			i=$((i + 1))
			line=$(one "$V" "$iv")
			echo "$i $iv $line" >>"$out"
			echo "round $r build $i interval $iv us: $(echo "$line" | cut -c1-60)..." >&2
		done
	done
done
python3 - "$out" "$@" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    b, iv, js = line.split(" ", 2)
    rows.setdefault((int(b), int(iv)), []).append(json.loads(js))
builds = sys.argv[2:]
print("build  interval  downtime ms (median, range)  min ms  target ms  downtime/target  bytes after stop  bandwidth MB/s  verified")
for (b, iv), reps in sorted(rows.items()):
    ok = [r for r in reps if r.get("verified") and r.get("error") is None]
    if not ok:
        print(f"{b:5}  {iv:8}  FAILED: {reps[0].get('error')} {reps[0].get('verify')}")
        continue
    dt = [r["downtime_ms"] for r in ok]
    mn = [r.get("downtime_min_ms", 0) for r in ok]
    tg = [2 * m + 10 for m in mn]
    ratio = [d / t for d, t in zip(dt, tg)]
    by = [r.get("downtime_bytes", 0) for r in ok]
    bw = [r.get("bandwidth_mbps", 0) / 8 for r in ok]
    print(f"{b:5}  {iv:8}  {statistics.median(dt):7.1f} ({min(dt):.1f}-{max(dt):.1f})"
          f"{statistics.median(mn):16.2f}  {statistics.median(tg):9.1f}  "
          f"{statistics.median(ratio):8.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
          f"  {statistics.median(by)/1e3:10.0f} kB  {statistics.median(bw):10.0f}"
          f"  {len(ok)}/{len(reps)}")
for i, v in enumerate(builds, 1):
    print(f"build {i}: {v}")
PY
rm -f "$out"
