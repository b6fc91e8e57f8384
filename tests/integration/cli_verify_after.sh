#!/bin/sh
# `vfmig vmm --incoming URI --verify after`: the destination checks its VM
# after the guest resumed, outside the downtime, and the verdict still
# reaches the source's report (a second return-path message); a VM that
# does not verify is reported as such. Also the report's downtime keys.
# Real device and VMM processes. Usage: cli_verify_after.sh VFMIG PROXY
V=$1
PROXY=$2
. "$(dirname "$0")/cli_lib.sh"


# 1. Verified after the resume; the downtime keys are there and sane.
vm a --ram 32M --fill 8M
vm b --ram 32M --incoming "unix:$D/mig-b.sock" --verify after
nap 0.3
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig-b.sock" --json) || fail "migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "not verified: $out"
[ "$(key "$out" verify)" = ok ] || fail "verdict: $out"
[ "$(key "$out" downtime_bytes)" -gt 0 ] || fail "downtime_bytes: $out"
# Converged, the source lets the destination catch up (a sync point) and
# runs one more round before the switchover.
[ "$(key "$out" converged)" = True ] || fail "did not converge: $out"
[ "$(key "$out" rounds)" -ge 2 ] || fail "no round after the sync point: $out"
python3 -c "import sys; b=float('$(key "$out" bandwidth_mbps)'); m=float('$(key "$out" downtime_min_ms)'); sys.exit(not (b > 0 and m > 0))" ||
	fail "bandwidth_mbps/downtime_min_ms: $out"
status_is "$D/b.ctl" running || fail "destination not running"
ctl "$D/b.ctl" '{"execute":"query-migrate"}' | grep -q '"verified": *true' ||
	fail "destination report: $(ctl "$D/b.ctl" '{"execute":"query-migrate"}')"
verified "$D/b.ctl" || fail "destination guest does not verify later"

# 2. A destination device that comes out of the migration wrong (the
# strict proxy flips a bit of every BAR0 read once it runs again): the
# migration completes, the check after the resume names the mismatch.
start "$V" device regs --socket-path "$D/c-dev.sock" --quiet
wait_for "$D/c-dev.sock"
start "$PROXY" --listen "$D/c.sock" --device "$D/c-dev.sock" --fault bad-reads-after-resume
wait_for "$D/c.sock"
start "$V" vmm --device "$D/c.sock" --ram 32M --control "$D/c.ctl" --quiet \
	--incoming "unix:$D/mig-c.sock" --verify after
wait_for "$D/c.ctl"
nap 0.2
out=$("$V" migrate --control "$D/b.ctl" "unix:$D/mig-c.sock" --json) && fail "a bad VM verified: $out"
[ "$(key "$out" verified)" = False ] || fail "verified: $out"
case "$(key "$out" verify)" in ok|pending|"") fail "no mismatch named: $out" ;; esac
[ "$(key "$out" error)" = None ] || fail "the migration itself failed: $out"
status_is "$D/c.ctl" running || fail "destination not running after a failed check"
ctl "$D/c.ctl" '{"execute":"query-migrate"}' | grep -q '"verified": *false' ||
	fail "destination report: $(ctl "$D/c.ctl" '{"execute":"query-migrate"}')"

# 3. A bad value is named.
"$V" vmm --device "$D/x.sock" --incoming "unix:$D/y.sock" --verify sometime 2>"$D/bad.err" &&
	fail "--verify sometime accepted"
grep -q "bad --verify 'sometime'" "$D/bad.err" || fail "error: $(cat "$D/bad.err")"
echo "cli-verify-after: ok"
