#!/bin/sh
# The switchover's per-device steps run for every device at once (the
# source's STOP_COPY arcs, the destination's restore and arcs:
# src/engine/migrate_par.c). With three devices of which the last two fail,
# the error still names the first failing one in device order, and the
# devices that did their step come back: the source's VM runs on with its
# guest verified. Usage: cli_switchover_devices.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# dev NAME [regs options]: a regs device NAME.sock
dev() {
	n=$1
	shift
	start "$V" device regs --socket-path "$D/$n.sock" --quiet "$@"
	wait_for "$D/$n.sock"
}
# vmm3 NAME [vmm options]: a VMM for NAME-0..2.sock, control NAME.ctl
vmm3() {
	n=$1
	shift
	start "$V" vmm --device "$D/$n-0.sock" --device "$D/$n-1.sock" \
		--device "$D/$n-2.sock" --ram 16M --control "$D/$n.ctl" --quiet "$@"
	wait_for "$D/$n.ctl"
}
alive() {
	status_is "$D/$1.ctl" running || fail "$1: the VM does not run after $2"
	verified "$D/$1.ctl" || fail "$1: the guest does not verify after $2"
}

# 1. Source: dev1 and dev2 refuse STOP_COPY, dev0 takes it (and must come
# back to RUNNING, or its guest driver fails).
dev a-0
dev a-1 --fail-transition STOP_COPY
dev a-2 --fail-transition STOP_COPY
vmm3 a
nap 0.2
res=$("$V" save --control "$D/a.ctl" "$D/a.vfmig") &&
	fail "a save with two devices refusing STOP_COPY succeeded"
echo "$res" | grep -q "switchover: device dev1 refused STOP_COPY" ||
	fail "the first failing device is not the one named: $res"
alive a "a failed switchover"

# 2. Destination: dev1 and dev2 refuse RUNNING after their restore; dev0
# may have started meanwhile and is reset with the others.
dev b-0
dev b-1
dev b-2
vmm3 b
dev c-0
dev c-1 --fail-transition RUNNING
dev c-2 --fail-transition RUNNING
vmm3 c --incoming "unix:$D/mig.sock"
nap 0.2
res=$("$V" migrate --control "$D/b.ctl" "unix:$D/mig.sock" --json) &&
	fail "a migration into devices that refuse RUNNING succeeded"
echo "$res" | grep -q "destination failed: resume: device dev1 refused RUNNING" ||
	fail "the first failing destination device is not the one named: $res"
alive b "a failed migration"
echo "cli-switchover-devices: all checks passed"
