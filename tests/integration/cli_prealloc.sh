#!/bin/sh
# `vfmig vmm --prealloc`: every page of guest RAM exists from the start
# (the VMM's shared-memory RSS covers the RAM before anything arrives, and
# a VMM without it holds far less), and a live migration into such a
# destination verifies every page there. Usage: cli_prealloc.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# shmem_kib PID: the process's resident shared memory (its guest RAM).
shmem_kib() { awk '/^RssShmem:/ { print $2 }' "/proc/$1/status"; }
# vmm_pid CTL: the VMM that serves control socket CTL.
vmm_pid() { pgrep -f -- "--control $1( |\$)" | head -1; }

vm src --ram 32M --fill 8M
vm dst --ram 32M --prealloc --incoming "unix:$D/mig.sock"
vm plain --ram 32M --incoming "unix:$D/mig2.sock"
wait_for "$D/mig.sock"
wait_for "$D/mig2.sock"

dpid=$(vmm_pid "$D/dst.ctl")
ppid=$(vmm_pid "$D/plain.ctl")
[ -n "$dpid" ] && [ -n "$ppid" ] || fail "VMM pids not found"
pre=$(shmem_kib "$dpid")
plain=$(shmem_kib "$ppid")
[ "$pre" -ge 32768 ] || fail "--prealloc destination holds $pre KiB of 32 MiB"
[ "$plain" -lt 16384 ] || fail "a destination without --prealloc holds $plain KiB already"

sleep 0.2 # the source guest runs: the migration is live
out=$("$V" migrate --control "$D/src.ctl" "unix:$D/mig.sock" --json) ||
	fail "migrate: $out"
echo "$out" | grep -q '"verified": *true' || fail "not verified: $out"
status_is "$D/dst.ctl" running || fail "destination not running"
verified "$D/dst.ctl" || fail "destination guest does not verify"
after=$(shmem_kib "$dpid")
[ "$after" -ge 32768 ] || fail "destination RAM shrank to $after KiB"
exit 0
