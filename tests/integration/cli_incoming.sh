#!/bin/sh
# A destination (`vfmig vmm --incoming unix:PATH`) whose incoming migration
# failed listens again on the same URI: a source that sends garbage, then one
# that sends a real stream cut in half (the devices had entered RESUMING and
# are reset), and then a real source VMM migrates to it and the destination
# verifies the VM. migrate-cancel ends such a wait for good; a file: URI is
# never read twice. Usage: cli_incoming.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# events SOCKET N: print the data of the next N MIGRATION events, one line
# each, after a first line "ready" once subscribed.
events() {
	python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
f = s.makefile(); f.readline()
print("ready", flush=True)
n = int(sys.argv[2])
while n:
    line = json.loads(f.readline())
    if line.get("event") == "MIGRATION":
        print(json.dumps(line["data"]), flush=True)
        n -= 1
PY
}
last_error() {
	ctl "$1" '{"execute":"query-migrate"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["report"]["error"])'
}

for n in src dst sav can fil; do
	start "$V" device regs --socket-path "$D/$n.sock" --quiet
done
for n in src dst sav can fil; do wait_for "$D/$n.sock"; done
start "$V" vmm --device "$D/src.sock" --ram 16M --control "$D/src.ctl" --quiet
start "$V" vmm --device "$D/sav.sock" --ram 16M --control "$D/sav.ctl" --quiet
start "$V" vmm --device "$D/dst.sock" --ram 16M --control "$D/dst.ctl" \
	--incoming "unix:$D/mig.sock"
start "$V" vmm --device "$D/can.sock" --ram 16M --control "$D/can.ctl" \
	--quiet --incoming "unix:$D/mig-can.sock"
for n in src sav dst can; do wait_for "$D/$n.ctl"; done
wait_for "$D/mig.sock"
wait_for "$D/mig-can.sock"
nap 0.3

# A real stream, cut: header, device list and part of the RAM. Cut in half,
# not at a fixed size: a guest that ran little (a loaded machine, memcheck)
# leaves a stream shorter than 1 MB, and a cut after its end is no cut.
"$V" save --control "$D/sav.ctl" "$D/whole.vfmig" >/dev/null || fail "save"
head -c $(($(wc -c <"$D/whole.vfmig") / 2)) "$D/whole.vfmig" >"$D/half.vfmig"
printf 'this is not a vfmig stream, not even close\n' >"$D/garbage"

# 1. Garbage. The attempt fails, MIGRATION says so with the error, and a new
# wait begins at once on the same socket.
events "$D/dst.ctl" 2 >"$D/events.out" &
evpid=$!
pids="$pids $evpid"
# Subscribed before the garbage goes, or the events are missed (a python
# start on a loaded machine takes seconds).
for _ in $(seq $((tries * 5))); do grep -q ready "$D/events.out" && break; sleep 0.02; done
grep -q ready "$D/events.out" || fail "the events client never subscribed"
send_to "$D/mig.sock" "$D/garbage"
wait_for "$D/mig.sock"
wait $evpid || fail "no MIGRATION events: $(cat "$D/events.out")"
sed -n 2p "$D/events.out" | grep -q '"status": "failed", "error": "incoming: ' ||
	fail "no failed event with the error: $(cat "$D/events.out")"
sed -n 3p "$D/events.out" | grep -q '"status": "setup"' ||
	fail "no setup event for the new wait: $(cat "$D/events.out")"
[ "$(migrate_status "$D/dst.ctl")" = setup ] ||
	fail "destination not waiting again: $(migrate_status "$D/dst.ctl")"
ctl "$D/dst.ctl" '{"execute":"query-status"}' | grep -q '"incoming"' ||
	fail "destination not incoming after a failed attempt"

# 2. Half a real stream: the devices entered RESUMING and took RAM and
# state; the attempt fails on the truncation, the devices are reset, and
# the destination listens again.
send_to "$D/mig.sock" "$D/half.vfmig"
wait_for "$D/mig.sock"
[ "$(migrate_status "$D/dst.ctl")" = setup ] || fail "not waiting after a cut stream"
last_error "$D/dst.ctl" | grep -q . || fail "no error in the report of the cut stream"
ctl "$D/dst.ctl" '{"execute":"query-devices"}' | grep -q '"migration_state": *"RUNNING"' ||
	fail "destination device not reset to RUNNING"
ctl "$D/dst.ctl" '{"execute":"query-status"}' | grep -q '"healthy": *true' ||
	fail "the reset after a cut stream counts as a fault: $(ctl "$D/dst.ctl" '{"execute":"query-status"}')"

# 3. A real source VMM migrates to the same URI, and the VM verifies.
out=$("$V" migrate --control "$D/src.ctl" "unix:$D/mig.sock" --json) ||
	fail "migration after two failed attempts: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "not verified: $out"
ctl "$D/dst.ctl" '{"execute":"query-status"}' | grep -q '"running": *true, "healthy": *true' ||
	fail "destination not running and healthy after the migration: $(ctl "$D/dst.ctl" '{"execute":"query-status"}')"
[ "$(migrate_status "$D/dst.ctl")" = completed ] || fail "destination status not completed"
nap 0.2
ctl "$D/dst.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	fail "destination guest does not verify"

# 4. migrate-cancel during the new wait ends it: no socket, status
# cancelled; then cont starts the VM here.
send_to "$D/mig-can.sock" "$D/garbage"
wait_for "$D/mig-can.sock"
ctl "$D/can.ctl" '{"execute":"migrate-cancel"}' | grep -q '"return"' ||
	fail "migrate-cancel refused"
for _ in $(seq 100); do [ -e "$D/mig-can.sock" ] || break; sleep 0.02; done
[ -e "$D/mig-can.sock" ] && fail "still listening after migrate-cancel"
[ "$(migrate_status "$D/can.ctl")" = cancelled ] ||
	fail "status after migrate-cancel: $(migrate_status "$D/can.ctl")"
ctl "$D/can.ctl" '{"execute":"cont"}' | grep -q '"return"' ||
	fail "cont after a cancelled incoming wait"

# 5. file: is read once. A cut file fails; the VMM stays incoming with
# status failed and the error, and does not try again.
start "$V" vmm --device "$D/fil.sock" --ram 16M --control "$D/fil.ctl" \
	--quiet --incoming "file:$D/half.vfmig"
wait_for "$D/fil.ctl"
for _ in $(seq 100); do
	[ "$(migrate_status "$D/fil.ctl")" = failed ] && break
	sleep 0.05
done
[ "$(migrate_status "$D/fil.ctl")" = failed ] || fail "a cut file did not fail"
last_error "$D/fil.ctl" | grep -q . || fail "no error for the cut file"
nap 0.5
[ "$(migrate_status "$D/fil.ctl")" = failed ] || fail "the file was read again"
ctl "$D/fil.ctl" '{"execute":"query-status"}' | grep -q '"incoming"' ||
	fail "not incoming after a failed restore"
echo "cli-incoming: all checks passed"
