#!/bin/sh
# soak: back-and-forth live migrations under workload, watching every
# long-lived process for growth (docs/reliability.md, "Soak").
#
#   bench/soak.sh [--migrations N] [--every K] [--ram SIZE] [--rss-bound KIB]
#                 [--strict] [--fds-only] [VFMIG]
#
# Two sides, A and B, each with its own regs, vram and dma device
# processes, which live for the whole run. A `vfmig vmm` runs the guest on
# one side; each migration starts a `vfmig vmm --incoming unix:` on the other
# side's devices, migrates to it with `vfmig migrate` (the built-in guest
# drivers keep writing throughout), checks the migration's verdict and the
# destination guest's own verifier, and quits the old VMM (a source is done
# after one completed migration), so the devices of the side left behind
# lose their client and get a new one at the next migration back. Every K
# migrations (default 20) and after the last it samples the resident memory
# (RssAnon + RssFile: VmRSS without the guest RAM it maps) and the open
# fds (/proc/PID/fd) of the six device processes and of the running VMM
# (a new process each time, taken at the same point of its life: running,
# verified, before it migrates out).
#
# Verdict, per process (the VMMs as one series; samples from migration 2
# on, when both sides have served an incoming VMM): fds exactly equal in every
# sample; RSS flat: the median of the last quarter of the samples at most
# BOUND above the median of the first quarter (BOUND: --rss-bound KiB,
# default 1024; why: docs/reliability.md, "Soak"). Prints a table and the
# verdict; with --strict exits 1 unless both hold (--fds-only: unless the
# fds hold; for a short run in the test suite, where RSS has too few
# samples to judge). Any failed or unverified migration exits 1 at once.
set -u
n=200 every=20 ram=64M strict=0 bound=1024 fds_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--migrations) n=$2; shift 2 ;;
	--every) every=$2; shift 2 ;;
	--ram) ram=$2; shift 2 ;;
	--rss-bound) bound=$2; shift 2 ;;
	--strict) strict=1; shift ;;
	--fds-only) fds_only=1; shift ;;
	-*) echo "soak: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
V=${1:-build/src/cli/vfmig}
D=$(mktemp -d /tmp/vfmig-soak-XXXXXX)
pids=""
stop_all() { for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done; pids=""; }
trap 'stop_all; rm -rf "$D"' EXIT
die() { echo "soak: $*" >&2
	for f in "$D"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -5 "$f" >&2; }; done
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	exit 1; }
wait_for() { for _ in $(seq 500); do [ -e "$1" ] && return 0; sleep 0.02; done
	die "no $1"; }
# The system's python: a version manager's shim costs seconds per start on
# a loaded machine, and this runs a few hundred times.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
# ctl SOCKET JSON [SOCKET JSON...]: the reply line of each command, in turn;
# a JSON of "sleep" waits 0.2 s instead.
ctl() {
	"$PY" - "$@" <<'PY'
import json, socket, sys, time
a = sys.argv[1:]
for path, cmd in zip(a[0::2], a[1::2]):
    if cmd == "sleep":
        time.sleep(0.2); continue
    s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile()
    f.readline()
    s.sendall((cmd + "\n").encode())
    while True:
        line = json.loads(f.readline())
        if "event" not in line:
            print(json.dumps(line)); break
    s.close()
PY
}
. "$(dirname "$0")/../tests/integration/proc_fds.sh" # fds PID
# rss PID: resident KiB that are the process's own (RssAnon + RssFile):
# VmRSS less RssShmem, the guest RAM memfd (and mappable BAR memfds) it maps,
# which grows as the guest touches more of its RAM, migration after
# migration, and is the guest's memory, not the process's.
rss() { awk '/^RssAnon:|^RssFile:/ { k += $2 } END { print k }' /proc/"$1"/status; }

# The devices, three per side, for the whole run.
for s in a b; do
	"$V" device regs --socket-path "$D/$s-regs.sock" --quiet 2>>"$D/dev-$s.log" &
	eval "pid_${s}_regs=$!"; pids="$pids $!"
	"$V" device vram --size 16M --socket-path "$D/$s-vram.sock" --quiet 2>>"$D/dev-$s.log" &
	eval "pid_${s}_vram=$!"; pids="$pids $!"
	"$V" device dma --socket-path "$D/$s-dma.sock" --quiet 2>>"$D/dev-$s.log" &
	eval "pid_${s}_dma=$!"; pids="$pids $!"
done
for s in a b; do for d in regs vram dma; do wait_for "$D/$s-$d.sock"; done; done
devs() { echo "--device $D/$1-regs.sock --device $D/$1-vram.sock --device $D/$1-dma.sock"; }

# vmm SIDE GEN [--incoming URI]: a VMM on SIDE's devices, control vmm-GEN.ctl
vmm() {
	s=$1 g=$2; shift 2
	# shellcheck disable=SC2046
	"$V" vmm $(devs "$s") --ram "$ram" --control "$D/vmm-$g.ctl" --quiet "$@" \
		2>>"$D/vmm.log" &
	vpid=$!; pids="$pids $vpid"
	wait_for "$D/vmm-$g.ctl"
}

vmm a 0 --fill 8M
cur_pid=$vpid cur_side=a
ctl "$D/vmm-0.ctl" sleep "$D/vmm-0.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	die "the first guest does not verify"

out=$D/samples.txt
: >"$out"
# sample MIGRATIONS: one line of the table
sample() {
	line="$1"
	for s in a b; do for d in regs vram dma; do
		eval "p=\$pid_${s}_${d}"
		line="$line $(rss "$p") $(fds "$p")"
	done; done
	line="$line $(rss "$cur_pid") $(fds "$cur_pid")"
	echo "$line" >>"$out"
}

t0=$(date +%s)
for i in $(seq "$n"); do
	to=b; [ "$cur_side" = b ] && to=a
	vmm "$to" "$i" --incoming "unix:$D/mig-$i.sock"
	new_pid=$vpid
	wait_for "$D/mig-$i.sock"
	res=$("$V" migrate --control "$D/vmm-$((i - 1)).ctl" "unix:$D/mig-$i.sock" --json) ||
		die "migration $i ($cur_side -> $to) failed: $(echo "$res" | tail -1)"
	echo "$res" | tail -1 | grep -q '"verified":true' ||
		die "migration $i not verified: $(echo "$res" | tail -1)"
	# The destination runs, and its guest's verifier (RAM stamps, the
	# devices' requests) agrees after a moment of running.
	ctl "$D/vmm-$i.ctl" '{"execute":"query-status"}' "" sleep \
		"$D/vmm-$i.ctl" '{"execute":"query-guest"}' \
		"$D/vmm-$((i - 1)).ctl" '{"execute":"quit"}' >"$D/check.out" ||
		die "migration $i: control sockets: $(cat "$D/check.out")"
	sed -n 1p "$D/check.out" | grep -q '"status": *"running"' ||
		die "migration $i: destination not running: $(cat "$D/check.out")"
	sed -n 2p "$D/check.out" | grep -q '"verified": *true' ||
		die "migration $i: destination guest does not verify: $(cat "$D/check.out")"
	wait "$cur_pid" || die "migration $i: the old VMM exited with an error"
	pids=$(echo "$pids" | sed "s/ $cur_pid\$//; s/ $cur_pid / /")
	cur_pid=$new_pid cur_side=$to
	# The first sample after both sides' devices have served a VMM that
	# arrived by migration (the first round trip warms them up: a side's
	# vram memory is first written by an incoming load), then every K.
	if [ "$i" -eq 2 ] || [ $((i % every)) -eq 0 ] || [ "$i" -eq "$n" ]; then
		sample "$i"
	fi
done
t1=$(date +%s)

# The table and the verdict.
"$PY" - "$out" "$bound" "$n" "$((t1 - t0))" "$fds_only" <<'PY' || exit_v=1
import statistics, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
bound, n, secs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fds_only = sys.argv[5] == "1"
names = ["a-regs", "a-vram", "a-dma", "b-regs", "b-vram", "b-dma", "vmm"]
print("soak: %d migrations in %d s (%.2f s each)" % (n, secs, secs / max(n, 1)))
print("%6s" % "migr" + "".join("%16s" % x for x in names))
print("%6s" % "" + "".join("%16s" % "RSS KiB  fds" for _ in names))
print("(RSS: RssAnon + RssFile, without the guest RAM memfd)")
for r in rows:
    print("%6d" % r[0] + "".join("%10d %5d" % (r[1 + 2 * k], r[2 + 2 * k])
                                  for k in range(len(names))))
q = max(1, len(rows) // 4)
ok = True
print()
for k, name in enumerate(names):
    rss = [r[1 + 2 * k] for r in rows]
    fds = [r[2 + 2 * k] for r in rows]
    first, last = statistics.median(rss[:q]), statistics.median(rss[-q:])
    flat = last - first <= bound
    fd_ok = len(set(fds)) == 1
    ok = ok and (flat or fds_only) and fd_ok
    print("%-7s RSS first-quarter median %d KiB, last-quarter %d KiB "
          "(%+d, bound %d): %s; fds %s: %s" % (
              name, first, last, last - first, bound,
              "flat" if flat else "GROWS", "=".join(map(str, sorted(set(fds)))),
              "equal" if fd_ok else "DRIFT"))
print("verdict:", ("fds equal" if fds_only else "flat") if ok else "GROWTH")
sys.exit(0 if ok else 1)
PY
[ "${exit_v:-0}" -eq 0 ] || [ "$strict" -eq 0 ] || exit 1
exit 0
