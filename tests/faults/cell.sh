#!/bin/sh
# One cell of the fault matrix (docs/reliability.md, "Fault matrix"): a
# real migration between real `vfmig vmm` and `vfmig device` processes,
# held at PHASE (vmm --test-hold), the fault injected there, then checked:
# the source runs on and its guest verifies (a source whose own device
# died says so, with the blocker in query-devices), the destination ran
# no guest and cleans up, the error names the phase and the cause.
# Prints one line: PHASE<TAB>FAULT<TAB>OUTCOME<TAB>ERROR<TAB>EXITS, where
# OUTCOME is "pass", "n/a: WHY" or "fail: WHAT"; exits 0 unless the cell
# could not be run at all.
#   cell.sh VFMIG PHASE FAULT
# FAULT_TRANSPORT=tcp: the migration (and the proxy) over loopback TCP
# instead of UNIX sockets.
# PHASE: setup pre-copy switchover stop-copy load resume
# FAULT: dst-vmm-killed dst-device-killed src-device-killed channel-cut
#        channel-stalled corrupt-byte incompatible enospc peer-stops-reading
#        ram-channel-cut ram-channel-stalled ram-corrupt-byte
V=$1 PHASE=$2 FAULT=$3
HERE=$(dirname "$0")
. "$HERE/../integration/cli_lib.sh"
PROXY="python3 $HERE/fault_proxy.py"
STALL_MS=$(slow_ms 1500)
TRANSPORT=${FAULT_TRANSPORT:-unix}
case $TRANSPORT in
unix) IN="unix:$D/dst-mig.sock" ;;
tcp) PORT=$(free_port) IN="tcp:127.0.0.1:$PORT" ;;
*) echo "cell.sh: FAULT_TRANSPORT is unix or tcp, not $TRANSPORT" >&2; exit 2 ;;
esac

ERR="" EXITS="" WHY=""
result() { # result OUTCOME
	printf '%s\t%s\t%s\t%s\t%s\n' "$PHASE" "$FAULT" "$1" \
		"$(echo "$ERR" | tr "\t\n" "  " | sed "s/ *$//")" "$EXITS"
	exit 0
}
na() { result "n/a: $*"; }
# A broken expectation is the cell's verdict, not a crash of the script.
bad() {
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	for f in "$D"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done
	result "fail: $*"
}
fail() { bad "$@"; }

# ---- the cells that cannot exist ----
case "$FAULT:$PHASE" in
enospc:pre-copy) na "a file target copies nothing live: the guest pauses at setup" ;;
enospc:load | enospc:resume)
	na "a file target has no destination process; its completion is the fsync and rename (cli-save)" ;;
incompatible:setup | incompatible:load) ;;
incompatible:*)
	na "a destination is incompatible from the start: found at setup (device list) or in the load (another device in a slot)" ;;
ram-corrupt-byte:resume | ram-corrupt-byte:load)
	na "nothing more flows toward the destination: its stream (or RAM channel) is complete" ;;
ram-*:setup | ram-*:switchover | ram-*:resume)
	na "RAM channel cells: pre-copy and stop-copy (and load for a cut or stall), where RAM flows" ;;
esac

case $PHASE in
setup | pre-copy | switchover | stop-copy) SIDE=src ;;
load | resume) SIDE=dst ;;
*) echo "cell.sh: unknown phase $PHASE" >&2; exit 2 ;;
esac
HOLD="$D/hold"
# An incompatible destination is one from the start: no hold, no fault.
[ "$FAULT" = incompatible ] && SIDE=none

q() { ctl "$1" "{\"execute\":\"$2\"}"; }
# dev NAME KIND: a device process, its pid in pid_NAME.
dev() {
	case $2 in
	dma) "$V" device dma --socket-path "$D/$1.sock" --quiet 2>>"$D/procs.log" & ;;
	vram) "$V" device vram --size 4M --socket-path "$D/$1.sock" --quiet 2>>"$D/procs.log" & ;;
	esac
	eval "pid_$1=$!"
	pids="$pids $!"
}
# vmm NAME HOLDSIDE DEVICES... -- OPTIONS: a VMM, its pid in pid_NAME.
vmm() {
	n=$1 side=$2; shift 2
	devs=""
	while [ "$1" != -- ]; do devs="$devs --device $D/$1.sock"; shift; done
	shift
	hold=""
	[ "$side" = "$SIDE" ] && hold="--test-hold $PHASE:$HOLD"
	"$V" vmm $devs --ram 32M --control "$D/$n.ctl" --quiet $hold "$@" \
		2>>"$D/$n.log" &
	eval "pid_$n=$!"
	pids="$pids $!"
}
alive() { kill -0 "$1" 2>/dev/null; }
field() { # field JSON PATH: python expression on j
	echo "$1" | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)" 2>/dev/null
}
dev_blocker() { # dev_blocker CTL ID: that device's blocker
	field "$(q "$1" query-devices)" \
		"{x['id']: x for x in j['return']['devices']}['$2']['blocker']"
}

# ---- the VM: a dma and a vram device, RAM over 2 channels ----
dev sdma dma; dev svram vram
wait_for "$D/sdma.sock"; wait_for "$D/svram.sock"
vmm src src sdma svram -- --fill 8M
case $FAULT in
enospc)
	MNT="$D/mnt"
	mkdir "$MNT"
	mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null ||
		na "no tmpfs could be mounted here (needs root)"
	on_exit() { umount "$MNT" 2>/dev/null; }
	URI="file:$MNT/vm.vfmig"
	;;
incompatible)
	if [ "$PHASE" = setup ]; then # one device fewer
		dev ddma dma
		wait_for "$D/ddma.sock"
		vmm dst dst ddma -- --incoming "$IN"
	else # the same two, the other way round
		dev ddma dma; dev dvram vram
		wait_for "$D/ddma.sock"; wait_for "$D/dvram.sock"
		vmm dst dst dvram ddma -- --incoming "$IN"
	fi
	;;
*)
	dev ddma dma; dev dvram vram
	wait_for "$D/ddma.sock"; wait_for "$D/dvram.sock"
	vmm dst dst ddma dvram -- --incoming "$IN"
	;;
esac
wait_for "$D/src.ctl"
if [ -z "${MNT:-}" ]; then
	wait_for "$D/dst.ctl"
	if [ "$TRANSPORT" = tcp ]; then
		wait_listen "$PORT"
		$PROXY tcp:127.0.0.1:0 "tcp:127.0.0.1:$PORT" "$D/proxy.ctl" \
			2>>"$D/proxy.log" &
	else
		wait_for "$D/dst-mig.sock"
		$PROXY "$D/mig.sock" "$D/dst-mig.sock" "$D/proxy.ctl" \
			2>>"$D/proxy.log" &
	fi
	pid_proxy=$!
	pids="$pids $!"
	wait_for "$D/proxy.ctl"
	CH="--channels 2"
else
	CH=""
fi
proxy() { # proxy COMMAND: the reply
	python3 - "$D/proxy.ctl" "$*" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rw"); f.write(sys.argv[2] + "\n"); f.flush()
print(f.readline().strip())
PY
}
[ -z "${MNT:-}" ] && URI=$(proxy addr)
nap 0.3

# ---- migrate, hold, fault, release ----
if [ -n "${MNT:-}" ]; then
	"$V" save --control "$D/src.ctl" "$MNT/vm.vfmig" >"$D/mig.out" 2>&1 &
else
	"$V" migrate --control "$D/src.ctl" "$URI" $CH --json \
		--stall-timeout-ms $STALL_MS >"$D/mig.out" 2>&1 &
fi
pid_mig=$!
[ "$SIDE" = none ] && touch "$HOLD"
for _ in $(seq $((1000 * slow))); do
	[ -e "$HOLD" ] && break
	alive $pid_mig || break
	sleep 0.01
done
[ -e "$HOLD" ] || bad "the run never reached the hold point $PHASE: $(cat "$D/mig.out")"

released=""
case $FAULT in
dst-vmm-killed) kill -KILL $pid_dst ;;
dst-device-killed) kill -KILL $pid_ddma ;;
src-device-killed) kill -KILL $pid_sdma ;;
channel-cut) proxy cut 0 >/dev/null ;;
ram-channel-cut) proxy cut 1 >/dev/null ;;
channel-stalled) proxy stall 0 >/dev/null ;;
ram-channel-stalled) proxy stall 1 >/dev/null ;;
corrupt-byte) proxy flip 0 >/dev/null ;;
ram-corrupt-byte) proxy flip 1 >/dev/null ;;
peer-stops-reading) kill -STOP $pid_dst ;;
enospc) # what space is left goes to another file
	dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null ;;
incompatible) ;;
*) echo "cell.sh: unknown fault $FAULT" >&2; exit 2 ;;
esac
rm -f "$HOLD"
wait $pid_mig
mrc=$?
case $FAULT in
*stalled) proxy release >/dev/null ;;
peer-stops-reading) kill -CONT $pid_dst ;;
esac
out=$(cat "$D/mig.out")
ERR=$(field "$(echo "$out" | tail -1)" "j['error']")
[ "$ERR" = None ] && ERR=""
[ -n "$ERR" ] || ERR=$(echo "$out" | grep -m1 . | sed 's/^migration failed: //')
EXITS="migrate $mrc"
[ -n "${MNT:-}" ] && EXITS="save $mrc"

# Where the fault meets nothing that still matters (the source's device
# gave all its data; a RAM channel or the main stream carried all there
# was), the migration completes: the VM runs on the destination.
END=rollback
case "$FAULT:$PHASE" in
src-device-killed:resume) END=complete ;;
src-device-killed:load | corrupt-byte:load | ram-channel-*:load) END=either ;;
# A flipped byte of RAM page data (stream 1.3) is a torn page, not a bad
# record: if the guest dirties that page again, its next copy heals it
# and the migration completes (and must verify); if not, the END is
# refused. In stop-copy nothing dirties RAM, so it always rolls back.
ram-corrupt-byte:pre-copy) END=either ;;
esac
if [ "$mrc" -eq 0 ] && [ $END != rollback ]; then
	echo "$out" | tail -1 | grep -q '"verified":true' || bad "not verified: $out"
	status_is "$D/dst.ctl" running || bad "the destination does not run"
	verified "$D/dst.ctl" || bad "the destination's guest does not verify"
	q "$D/src.ctl" query-status | grep -q postmigrate ||
		bad "the source is not postmigrate: $(q "$D/src.ctl" query-status)"
	if [ "$FAULT" = src-device-killed ]; then
		b=$(dev_blocker "$D/src.ctl" dev0)
		case $b in "connection to the device lost: "?*) ;;
		*) bad "query-devices shows no blocker for dev0: $b" ;; esac
	fi
	ERR="(none: completed)"
	kill -TERM $pid_dst; wait $pid_dst
	EXITS="$EXITS, destination vmm $? (SIGTERM after)"
	result "pass (completed)"
fi

# ---- the source ----
s=$(q "$D/src.ctl" query-status)
[ "$mrc" -eq 0 ] && bad "the migration succeeded despite the fault: $out"
[ "$END" = complete ] && bad "the migration failed where it should complete: $ERR"
[ "$mrc" -eq 1 ] || bad "migrate exited $mrc, not 1"
case $ERR in
setup:* | pre-copy:* | switchover:* | stop-copy:* | completion:* | \
	"resume:"*) ;;
*) bad "the error does not start with a phase: $ERR" ;;
esac
status_is "$D/src.ctl" running || bad "the source does not run: $s"
if [ "$FAULT" = src-device-killed ]; then
	case $ERR in *dev0*) ;; *) bad "the error does not name dev0: $ERR" ;; esac
	b=$(dev_blocker "$D/src.ctl" dev0)
	case $b in "connection to the device lost: "?*) ;;
	*) bad "query-devices shows no blocker for dev0: $b" ;; esac
else
	verified "$D/src.ctl" ||
		bad "the source's guest does not verify: $(q "$D/src.ctl" query-guest)"
fi

# ---- the destination ----
if [ -n "${MNT:-}" ]; then
	left=$(ls_dir "$MNT")
	[ "$left" = filler ] || bad "the failed save left files: $left"
elif [ "$FAULT" = dst-vmm-killed ]; then
	wait $pid_dst 2>/dev/null
	EXITS="$EXITS, destination vmm $? (killed)"
else
	# It ran no guest, and listens again (or, where a device of it is
	# dead, shows that); SIGTERM ends it with 0 and its sockets go.
	for _ in $(seq $((100 * slow))); do
		st=$(field "$(q "$D/dst.ctl" query-migrate)" "j['return']['status']")
		case $st in setup | completed) break ;; esac
		sleep 0.05
	done
	[ "$st" = completed ] &&
		bad "split brain: the destination runs the guest too (its migration completed; the source rolled back)"
	[ "$st" = setup ] || bad "the destination's migration is $st, not waiting again"
	ds=$(q "$D/dst.ctl" query-status)
	echo "$ds" | grep -q '"status": *"incoming"' ||
		bad "the destination left the incoming state: $ds"
	if [ "$FAULT" = dst-device-killed ]; then
		b=$(dev_blocker "$D/dst.ctl" dev0)
		case $b in "connection to the device lost: "?*) ;;
		*) bad "the destination shows no blocker for its dead dev0: $b" ;; esac
	else # its devices dropped what they loaded: nothing is wrong
		echo "$ds" | grep -q '"healthy": *true' ||
			bad "the destination is not healthy after the failed attempt: $ds"
	fi
	kill -TERM $pid_dst
	wait $pid_dst
	drc=$?
	EXITS="$EXITS, destination vmm $drc (SIGTERM after)"
	[ $drc -eq 0 ] || bad "the destination exited $drc on SIGTERM"
	for f in dst.ctl dst-mig.sock; do
		[ -e "$D/$f" ] && bad "the destination left $f behind"
	done
fi
result "pass (rolled back)"
