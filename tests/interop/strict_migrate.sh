#!/bin/sh
# Migrations of devices behind a strict server (vfmig-strict-proxy: refuses
# what libvfio-user refuses in STOP and STOP_COPY, and region access in
# STOP_COPY). Real device, proxy and VMM processes on both sides:
#   1. live migration of a VM with a regs and a vram device verifies, and
#      not one command was refused on either side;
#   2. a paused VM migrates, arrives paused, runs after cont, verifies; a
#      device that does not offer PRE_COPY migrates live, stop-copy only;
#   3. a device that fails its stop-copy and then cannot leave STOP_COPY
#      (state change and reset both refused): the error names the first
#      cause and the failed rollback, and the source VM reports the fault.
# Usage: strict_migrate.sh VFMIG PROXY
V=$1
PROXY=$2
. "$(dirname "$0")/../integration/cli_lib.sh"

# strict NAME KIND [proxy options...]: device KIND behind a proxy at NAME.sock
strict() {
	n=$1; k=$2; shift 2
	if [ "$k" = vram ]; then
		start "$V" device vram --size 4M --socket-path "$D/$n-dev.sock" --quiet
	else
		start "$V" device regs --socket-path "$D/$n-dev.sock" --quiet
	fi
	start "$PROXY" --listen "$D/$n.sock" --device "$D/$n-dev.sock" --log "$D/$n.proxy" "$@"
	wait_for "$D/$n.sock"
	touch "$D/$n.proxy"
}
vmm() { # vmm NAME DEVICE... [-- vmm options...]
	n=$1; shift
	args=""
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args="$args --device $D/$1.sock"; shift; done
	[ $# -gt 0 ] && shift
	start "$V" vmm $args --ram 16M --control "$D/$n.ctl" --quiet "$@"
	wait_for "$D/$n.ctl"
}
no_refusals() {
	for f in "$@"; do
		grep -q refused "$D/$f.proxy" && fail "the VMM asked a stopped device: $(grep refused "$D/$f.proxy" | head -3)"
	done
	return 0
}

# 1. Live, regs + vram, both sides strict.
strict a0 regs; strict a1 vram; strict b0 regs; strict b1 vram
vmm a a0 a1
vmm b b0 b1 -- --incoming "unix:$D/mig-b.sock"
sleep 0.3
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig-b.sock" --json) || fail "live migration: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "live migration not verified: $out"
for f in a0 a1; do
	grep -q -- "-> STOP_COPY" "$D/$f.proxy" || fail "$f never reached STOP_COPY: $(cat "$D/$f.proxy")"
done
grep -q -- "RESUMING -> STOP" "$D/b0.proxy" || fail "b0 was not loaded: $(cat "$D/b0.proxy")"
no_refusals a0 a1 b0 b1
status_is "$D/b.ctl" running || fail "destination not running"
verified "$D/b.ctl" || fail "destination guest does not verify"

# 2. Paused: stop B, migrate it to C (strict too); C arrives paused.
strict c0 regs; strict c1 vram
vmm c c0 c1 -- --incoming "unix:$D/mig-c.sock"
ctl "$D/b.ctl" '{"execute":"stop"}' | grep -q '"return"' || fail "stop B"
out=$("$V" migrate --control "$D/b.ctl" "unix:$D/mig-c.sock" --json) || fail "paused migration: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "paused migration not verified: $out"
no_refusals b0 b1 c0 c1
status_is "$D/c.ctl" paused || fail "a paused VM arrived $(ctl "$D/c.ctl" '{"execute":"query-status"}')"
ctl "$D/c.ctl" '{"execute":"cont"}' | grep -q '"return"' || fail "cont on C"
status_is "$D/c.ctl" running || fail "C not running after cont"
verified "$D/c.ctl" || fail "C does not verify after cont"

# 2b. A device that does not offer PRE_COPY migrates live, stop-copy only:
# it never enters PRE_COPY, and the migration does not wait for it.
strict f0 regs --no-precopy
strict g0 regs
vmm f f0
vmm g g0 -- --incoming "unix:$D/mig-g.sock"
sleep 0.3
out=$("$V" migrate --control "$D/f.ctl" "unix:$D/mig-g.sock" --json) || fail "no-PRE_COPY migration: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "no-PRE_COPY migration not verified: $out"
grep -q -- "-> PRE_COPY" "$D/f0.proxy" && fail "a device without PRE_COPY entered it"
grep -q -- "RUNNING -> STOP" "$D/f0.proxy" || fail "f0 never stopped: $(cat "$D/f0.proxy")"
no_refusals f0 g0
verified "$D/g.ctl" || fail "no-PRE_COPY destination does not verify"

# 3. A stop-copy that fails, on a device that then cannot leave STOP_COPY.
strict d0 regs --fault stop-copy-read --fault stuck-in-stop-copy
strict e0 regs
vmm d d0
vmm e e0 -- --incoming "unix:$D/mig-e.sock"
sleep 0.3
out=$("$V" migrate --control "$D/d.ctl" "unix:$D/mig-e.sock" --precopy ram --json) &&
	fail "a migration whose stop-copy fails succeeded: $out"
last=$(echo "$out" | tail -1)
echo "$last" | grep -q '"error":"stop-copy: device dev0 data' || fail "first cause not named: $last"
echo "$last" | grep -q 'rollback: device dev0 could not return to RUNNING' ||
	fail "the failed rollback is not named: $last"
echo "$last" | grep -q 'reset that followed failed too' || fail "the failed reset is not named: $last"
grep -q "fault: refused MIG_DATA_READ in STOP_COPY" "$D/d0.proxy" || fail "stop-copy fault not hit"
grep -q "refused DEVICE_RESET in STOP_COPY" "$D/d0.proxy" || fail "no reset was tried"
st=$(ctl "$D/d.ctl" '{"execute":"query-status"}')
echo "$st" | grep -q '"healthy": *false' || fail "the VM says it is healthy: $st"
echo "$st" | grep -q '"device_faults": *\[{"id": *"dev0"' || fail "no device fault listed: $st"
ctl "$D/d.ctl" '{"execute":"query-devices"}' | grep -q '"fault": *"could not return' ||
	fail "query-devices does not show the fault"
echo "strict-migrate: all checks passed"
