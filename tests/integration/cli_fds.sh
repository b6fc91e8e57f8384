#!/bin/sh
# No fd is leaked across the cycles a long-lived process goes through
# (counted in /proc/PID/fd, exactly): device processes (regs, vram, dma)
# across VMMs that attach and leave and clients refused while one is
# attached; a source VMM across failed and cancelled migrations (back to
# running each time); a destination VMM across failed incoming attempts,
# which then takes a real migration. Usage: cli_fds.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# The system's python for the control calls (a version manager's shim
# costs seconds a start on a loaded machine).
if [ -x /usr/bin/python3 ]; then
	mkdir "$D/bin" && ln -s /usr/bin/python3 "$D/bin/python3" && PATH=$D/bin:$PATH
fi
. "$(dirname "$0")/proc_fds.sh"
# same WHAT BEFORE PID: fail unless PID has BEFORE fds now.
same() {
	now=$(fds "$3")
	[ "$now" = "$2" ] || fail "$1: $2 fds before, $now after: $(ls -l /proc/"$3"/fd)"
}
# poke SOCKET N: N connections that are closed at once (refused or not):
# a device with a client refuses another at once; a free one takes it as
# its client and waits for its VERSION, which never comes: it is closed
# after 0.3 s.
poke() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(0.3)
    try:
        s.recv(1)
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
PY
}
devices() { # devices SIDE: regs, vram, dma of SIDE; pids in dev_SIDE
	"$V" device regs --socket-path "$D/$1-regs.sock" --quiet 2>>"$D/procs.log" &
	p1=$!
	"$V" device vram --size 4M --socket-path "$D/$1-vram.sock" --quiet 2>>"$D/procs.log" &
	p2=$!
	"$V" device dma --socket-path "$D/$1-dma.sock" --quiet 2>>"$D/procs.log" &
	p3=$!
	pids="$pids $p1 $p2 $p3"
	eval "dev_$1=\"$p1 $p2 $p3\""
	for d in regs vram dma; do wait_for "$D/$1-$d.sock"; done
}
devargs() { echo "--device $D/$1-regs.sock --device $D/$1-vram.sock --device $D/$1-dma.sock"; }

# 1. Device processes: counts before any client, then five VMMs that each
# attach all three, run the guest and quit, with refused second clients
# while attached (and plain connections that close at once in between).
devices a
for p in $dev_a; do eval "before_$p=$(fds "$p")"; done
for i in 1 2 3 4 5; do
	# shellcheck disable=SC2046
	"$V" vmm $(devargs a) --ram 16M --control "$D/c$i.ctl" --quiet 2>>"$D/procs.log" &
	vp=$!; pids="$pids $vp"
	wait_for "$D/c$i.ctl"
	status_is "$D/c$i.ctl" running || fail "VMM $i not running"
	for d in regs vram dma; do poke "$D/a-$d.sock" 3; done
	verified "$D/c$i.ctl" || fail "VMM $i did not verify"
	ctl "$D/c$i.ctl" '{"execute":"quit"}' >/dev/null
	wait "$vp" || fail "VMM $i exited with an error"
	for d in regs vram dma; do poke "$D/a-$d.sock" 2; done
done
for p in $dev_a; do eval "b=\$before_$p"; same "device $p after 5 VMMs" "$b" "$p"; done

# 2. A source VMM: 4 migrations to nobody, 3 cancelled while the
# destination (frozen) stalls them, and 2 that a destination refuses
# (killed as the stream arrives); running and verified after each.
devices b
# shellcheck disable=SC2046
start "$V" vmm $(devargs a) --ram 16M --control "$D/src.ctl" --quiet --fill 4M
wait_for "$D/src.ctl"
status_is "$D/src.ctl" running || fail "source not running"
verified "$D/src.ctl" || fail "source does not verify"
src=$(echo "$pids" | awk '{ print $NF }')
s0=$(fds "$src")
for i in 1 2 3 4; do
	"$V" migrate --control "$D/src.ctl" "unix:$D/nobody.sock" \
		--connect-timeout-ms 100 --json >/dev/null && fail "migration to nobody succeeded"
done
status_is "$D/src.ctl" running || fail "source not running after failed migrations"
same "source after 4 failed migrations" "$s0" "$src"
for i in 1 2 3 4 5; do
	# shellcheck disable=SC2046
	"$V" vmm $(devargs b) --ram 16M --control "$D/d$i.ctl" --quiet \
		--incoming "unix:$D/mig-$i.sock" 2>>"$D/procs.log" &
	dp=$!; pids="$pids $dp"
	wait_for "$D/mig-$i.sock"
	kill -STOP "$dp"
	"$V" migrate --control "$D/src.ctl" "unix:$D/mig-$i.sock" --json \
		>"$D/m$i.out" 2>&1 &
	mp=$!
	sleep 0.5
	if [ "$i" -le 3 ]; then
		ctl "$D/src.ctl" '{"execute":"migrate-cancel"}' | grep -q return ||
			fail "migrate-cancel $i refused"
	fi
	kill -KILL "$dp"
	wait "$dp" 2>/dev/null
	wait "$mp" && fail "migration $i to a frozen destination succeeded"
	status_is "$D/src.ctl" running || fail "source not running after migration $i"
done
verified "$D/src.ctl" || fail "source does not verify after the failed migrations"
same "source after 4 failed, 3 cancelled, 2 killed migrations" "$s0" "$src"
for p in $dev_b; do wait_for "$D/b-regs.sock"; done

# 3. A destination VMM: 5 garbage attempts, each failing and listening
# again, then a real migration from the source.
# shellcheck disable=SC2046
start "$V" vmm $(devargs b) --ram 16M --control "$D/dst.ctl" --quiet \
	--incoming "unix:$D/mig.sock"
wait_for "$D/dst.ctl"
wait_for "$D/mig.sock"
dst=$(echo "$pids" | awk '{ print $NF }')
sleep 0.2
for _ in $(seq 100); do echo "this is not a vfmig stream"; done >"$D/garbage"
t0=$(fds "$dst")
for i in 1 2 3 4 5; do
	send_to "$D/mig.sock" "$D/garbage"
	sleep 0.1
	wait_for "$D/mig.sock"
done
same "destination after 5 failed incoming attempts" "$t0" "$dst"
"$V" migrate --control "$D/src.ctl" "unix:$D/mig.sock" --json >"$D/real.out" ||
	fail "the real migration failed: $(tail -1 "$D/real.out")"
status_is "$D/dst.ctl" running || fail "destination not running"
verified "$D/dst.ctl" || fail "destination does not verify"
echo ok
