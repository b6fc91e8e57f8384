#!/bin/sh
# COMMIT, both ways (docs/migration.md, "Switchover acknowledgement"): the
# VM never runs on both sides, whichever side is lost around it.
#  1. The source is killed after it read RESUMED, before it sent COMMIT
#     (source hold "commit"): the destination does not start its guest,
#     rolls back, says why and listens again.
#  2. The destination is killed after it sent RESUMED, before it read
#     COMMIT (destination hold "commit"), which the source has sent by
#     then: the source does not take the VM back; it stays paused, the
#     error says why, and `cont` runs it again, intact.
#   commit.sh VFMIG
V=$1
. "$(dirname "$0")/../integration/cli_lib.sh"

query_migrate() { ctl "$1" '{"execute":"query-migrate"}'; }

# ---- 1: no COMMIT, no guest on the destination ----
vm s1 --test-hold "commit:$D/hold1"
src1=${pids##* }
vm d1 --incoming "unix:$D/in1.sock"
wait_for "$D/in1.sock"
verified "$D/s1.ctl" || fail "the source's guest does not verify before"
"$V" migrate --control "$D/s1.ctl" "unix:$D/in1.sock" >"$D/mig.out" 2>&1 &
mig=$!
hold_wait "$D/hold1" $mig "$D/mig.out"
kill -KILL "$src1"
wait $mig
listening_again "$D/d1.ctl"
status_is "$D/d1.ctl" incoming || fail "the destination left the incoming state"
q=$(query_migrate "$D/d1.ctl")
echo "$q" | grep -q "no COMMIT from the source, the guest does not start here" ||
	fail "the destination does not say it got no COMMIT: $q"
echo "case 1 ok: $(echo "$q" | grep -o '"error": *"[^"]*"')"

# ---- 2: COMMIT sent, then nothing: the source stays paused ----
vm s2
vm d2 --incoming "unix:$D/in2.sock" --test-hold "commit:$D/hold2"
dst2=${pids##* }
wait_for "$D/in2.sock"
verified "$D/s2.ctl" || fail "the source's guest does not verify before"
"$V" migrate --control "$D/s2.ctl" "unix:$D/in2.sock" >"$D/mig.out" 2>&1 &
mig=$!
hold_wait "$D/hold2" $mig "$D/mig.out"
# RESUMED is out; the source answers it within microseconds. Give it a
# generous moment on a loaded machine, then lose the destination.
nap 2
kill -KILL "$dst2"
wait $mig
rc=$?
out=$(cat "$D/mig.out")
[ $rc -eq 1 ] || fail "migrate exited $rc, not 1: $out"
case $out in
*"completion: COMMIT sent, but the destination did not confirm its start"*"the VM stays paused here"*) ;;
*"sending COMMIT"*) fail "COMMIT was not sent before the destination died (too slow a machine?): $out" ;;
*) fail "the error does not say the VM stays paused after COMMIT: $out" ;;
esac
status_is "$D/s2.ctl" paused ||
	fail "the source runs after COMMIT: $(ctl "$D/s2.ctl" '{"execute":"query-status"}')"
[ "$(migrate_status "$D/s2.ctl")" = failed ] || fail "query-migrate: $(query_migrate "$D/s2.ctl")"
# An operator who knows the destination did not take it runs it here.
ctl "$D/s2.ctl" '{"execute":"cont"}' | grep -q '"return"' || fail "cont refused"
status_is "$D/s2.ctl" running || fail "cont did not run the source"
verified "$D/s2.ctl" || fail "the source's guest does not verify after cont"
echo "case 2 ok: $(echo "$out" | head -1)"
