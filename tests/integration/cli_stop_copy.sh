#!/bin/sh
# A device whose STOP_COPY data never ends (`regs --endless-stop-copy`) must
# not keep the VM paused forever: the stop-copy of each device is bounded
# (its estimate x 2 + 64 MiB by default, or --max-stop-copy-bytes), and
# migrate-cancel ends it. Either way the migration fails with the phase
# named and the source runs again with its guest verifying.
# Usage: cli_stop_copy.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

start "$V" device regs --socket-path "$D/a.sock" --quiet --endless-stop-copy
start "$V" device regs --socket-path "$D/b.sock" --quiet --endless-stop-copy
wait_for "$D/a.sock"
wait_for "$D/b.sock"
start "$V" vmm --device "$D/a.sock" --ram 16M --control "$D/a.ctl" --quiet
start "$V" vmm --device "$D/b.sock" --ram 16M --control "$D/b.ctl" --quiet \
	--incoming "unix:$D/mig.sock"
wait_for "$D/a.ctl"
wait_for "$D/b.ctl"
nap 0.2

runs() { # runs WHEN: the source VM runs and its guest verifies
	ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q '"running"' ||
		fail "$1: the source does not run"
	sleep 0.2
	ctl "$D/a.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
		fail "$1: the source guest does not verify"
}

# in_stop_copy: wait until the migration is in its switchover with more
# than 8 MiB of device data sent (the endless device is being pumped).
in_stop_copy() {
	for _ in $(seq 500); do
		q=$(ctl "$D/a.ctl" '{"execute":"query-migrate"}')
		b=$(echo "$q" | sed -n 's/.*"device_bytes": *\([0-9]*\).*/\1/p')
		if echo "$q" | grep -q '"status": *"switchover"' &&
			[ "${b:-0}" -gt 8388608 ]; then
			return 0
		fi
		sleep 0.02
	done
	fail "the migration never got into its stop-copy: $q"
}

# ends_soon PID WHAT: PID exits within 3 s.
ends_soon() {
	for _ in $(seq 60); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	fail "$2 did not end the migration within 3 s"
}

# 1. The default bound: the device estimates 65620 bytes, so it may send
# 2 x 65620 + 64 MiB = 67240104 bytes, not more.
"$V" save --control "$D/a.ctl" /dev/null >"$D/bound.out" &
mpid=$!
for _ in $(seq 400); do
	kill -0 $mpid 2>/dev/null || break
	sleep 0.05
done
kill -0 $mpid 2>/dev/null && fail "a save of an endless stop-copy still runs after 20 s"
wait $mpid && fail "a save of an endless stop-copy succeeded"
grep -q "stop-copy: device dev0 sent more than 67240104 bytes of stop-copy data (its estimate was 65620)" \
	"$D/bound.out" || fail "the bound was not named: $(cat "$D/bound.out")"
runs "after the default stop-copy bound"

# 2. --max-stop-copy-bytes sets the bound.
out=$("$V" migrate --control "$D/a.ctl" file:/dev/null --max-stop-copy-bytes 3000000) &&
	fail "a save of an endless stop-copy succeeded"
echo "$out" | grep -q "sent more than 3000000 bytes of stop-copy data" ||
	fail "--max-stop-copy-bytes was not applied: $out"
"$V" migrate --control "$D/a.ctl" file:/dev/null --max-stop-copy-bytes 0 \
	2>/dev/null && fail "--max-stop-copy-bytes 0 accepted"
ctl "$D/a.ctl" '{"execute":"migrate","arguments":{"uri":"file:/dev/null","max-stop-copy-bytes":-5}}' |
	grep -q 'max-stop-copy-bytes' || fail "a negative max-stop-copy-bytes was not named"
runs "after --max-stop-copy-bytes"

# 3. migrate-cancel during the stop-copy of a save (bound far away).
"$V" save --control "$D/a.ctl" /dev/null --max-stop-copy-bytes 1099511627776 \
	>"$D/cancel-save.out" &
mpid=$!
in_stop_copy
ctl "$D/a.ctl" '{"execute":"migrate-cancel"}' | grep -q '"return"' ||
	fail "migrate-cancel refused"
ends_soon $mpid "migrate-cancel during a save's stop-copy"
wait $mpid && fail "a cancelled save succeeded"
grep -q "migration cancelled: stop-copy: cancelled by request" "$D/cancel-save.out" ||
	fail "the cancel was not reported: $(cat "$D/cancel-save.out")"
runs "after a cancel during a save's stop-copy"

# 4. migrate-cancel during the stop-copy of a live migration whose
# destination takes the endless data.
"$V" migrate --control "$D/a.ctl" "unix:$D/mig.sock" \
	--max-stop-copy-bytes 1099511627776 >"$D/cancel-live.out" &
mpid=$!
in_stop_copy
ctl "$D/a.ctl" '{"execute":"migrate-cancel"}' | grep -q '"return"' ||
	fail "migrate-cancel refused"
ends_soon $mpid "migrate-cancel during a live stop-copy"
wait $mpid && fail "a cancelled migration succeeded"
grep -q "migration cancelled: stop-copy: cancelled by request" "$D/cancel-live.out" ||
	fail "the cancel was not reported: $(cat "$D/cancel-live.out")"
runs "after a cancel during a live stop-copy"
# The destination saw a cut stream: it listens again, its guest never ran.
for _ in $(seq 100); do
	ctl "$D/b.ctl" '{"execute":"query-migrate"}' | grep -q '"report"' && break
	sleep 0.05
done
ctl "$D/b.ctl" '{"execute":"query-status"}' | grep -q '"incoming"' ||
	fail "the destination left incoming after a cancelled source"
echo "cli-stop-copy: all checks passed"
