#!/bin/sh
# RAM over several connections (`vfmig migrate --channels N`) as a user
# runs it: real device and VMM processes, a guest that writes all along,
# and every byte of RAM and device state checked by the destination's
# verifier. Channels 2 and 4 over UNIX and TCP, and 1 (one stream) again;
# bad counts and a file: URI refused by name; a destination that sees a
# wrong migration id, a missing channel, a channel twice or a channel cut
# mid-record fails with the cause and its guest never runs; a source whose
# channel is dropped by the destination rolls back and runs on.
# Usage: cli_channels.sh VFMIG
V=$1
PEER="python3 $(dirname "$0")/mchan_peer.py"
. "$(dirname "$0")/cli_lib.sh"
# Under memcheck the VMs are 16M with 6M filled: a destination's main
# stream times out after 30 s without a record, and with RAM channels the
# pre-copy sends nothing on it (vfmig, natively, fails the same way with
# --channels 2 --max-bandwidth 512K and 64M).
ram=64M fill=24M
[ "$slow" -gt 1 ] && ram=16M fill=6M

report() { # report CTL KEY: that key of the last migration's report
	ctl "$1" '{"execute":"query-migrate"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["report"]["'"$2"'"])'
}
wait_error() { # wait_error CTL TEXT: the last report's error contains TEXT
	for _ in $(seq $((400 * slow))); do
		e=$(report "$1" error 2>/dev/null) && case "$e" in *"$2"*) return 0;; esac
		sleep 0.1
	done
	fail "no error '$2' on $1 (last: ${e:-none})"
}
# migrate_ok SRC DST URI N: migrate with N channels; the report, the
# destination's report and its guest verify; the source is postmigrate.
migrate_ok() {
	out=$("$V" migrate --control "$D/$1.ctl" "$3" --channels "$4" \
		--stall-timeout-ms "$(slow_ms 10000)" --json) ||
		fail "migrate $1 -> $2 over $3 with $4 channels: $out"
	echo "$out" | tail -1 | grep -q '"verified":true' || fail "not verified: $out"
	echo "$out" | tail -1 | grep -q "\"channels\":$4" || fail "report lacks channels $4: $out"
	ctl "$D/$1.ctl" '{"execute":"query-status"}' | grep -q postmigrate ||
		fail "source $1 not postmigrate"
	status_is "$D/$2.ctl" running || fail "destination $2 not running"
	[ "$(report "$D/$2.ctl" channels)" = "$4" ] ||
		fail "destination $2 reports $(report "$D/$2.ctl" channels) channels"
	verified "$D/$2.ctl" || fail "destination $2 guest does not verify"
}
incoming() { # incoming NAME URI: a destination VMM for device NAME
	start "$V" vmm --device "$D/$1.sock" --ram $ram --control "$D/$1.ctl" \
		--quiet --incoming "$2"
	wait_for "$D/$1.ctl"
}

for n in a b c d e h x; do
	start "$V" device regs --socket-path "$D/$n.sock" --quiet
done
for n in a b c d e h x; do wait_for "$D/$n.sock"; done
start "$V" vmm --device "$D/a.sock" --ram $ram --control "$D/a.ctl" --quiet \
	--fill $fill
wait_for "$D/a.ctl"
nap 0.3

# 1. Counts out of range and a file: URI are refused before anything.
"$V" migrate --control "$D/a.ctl" "unix:$D/none.sock" --channels 0 2>"$D/e0" &&
	fail "--channels 0 accepted"
grep -q -- "--channels" "$D/e0" || fail "--channels 0 not named: $(cat "$D/e0")"
ctl "$D/a.ctl" '{"execute":"migrate","arguments":{"uri":"unix:x","channels":17}}' |
	grep -q '"channels\\" must be 1..16' || fail "channels 17 not refused by name"
"$V" migrate --control "$D/a.ctl" "file:$D/vm.vfmig" --channels 2 2>"$D/ef" &&
	fail "a file: URI with 2 channels accepted"
grep -q "file: URI is one stream" "$D/ef" || fail "file refusal unclear: $(cat "$D/ef")"
[ -e "$D/vm.vfmig" ] && fail "a refused save left a file"
status_is "$D/a.ctl" running || fail "source not running after the refusals"

# 2. Channels 2 over UNIX, 4 over TCP, 1 over UNIX, 3 over TCP: the VM goes
# a -> b -> c -> d -> e with its RAM fill and device state.
incoming b "unix:$D/mig-b.sock"
migrate_ok a b "unix:$D/mig-b.sock" 2
port=$(free_port)
incoming c "tcp:127.0.0.1:$port"
migrate_ok b c "tcp:127.0.0.1:$port" 4
incoming d "unix:$D/mig-d.sock"
migrate_ok c d "unix:$D/mig-d.sock" 1
port=$(free_port)
incoming e "tcp:127.0.0.1:$port"
migrate_ok d e "tcp:127.0.0.1:$port" 3

# 3. A destination facing a source that gets its channels wrong: each
# attempt fails with the cause, the guest never runs, it listens again.
incoming h "unix:$D/mig-h.sock"
$PEER src wrong-id "$D/mig-h.sock" || fail "peer wrong-id"
wait_error "$D/h.ctl" 'names migration id "ffffffffffffffffffffffffffffffff", this migration'"'"'s is "0123456789abcdef0123456789abcdef"'
$PEER src dup "$D/mig-h.sock" || fail "peer dup"
wait_error "$D/h.ctl" "channel 0 came a second time"
$PEER src cut "$D/mig-h.sock" || fail "peer cut"
wait_error "$D/h.ctl" "load: RAM channel 1: stream truncated"
$PEER src missing "$D/mig-h.sock" || fail "peer missing"
wait_error "$D/h.ctl" "only 1 of the 2 announced RAM channels connected within"
ctl "$D/h.ctl" '{"execute":"query-status"}' | grep -q '"incoming"' ||
	fail "destination h left the incoming state: $(ctl "$D/h.ctl" '{"execute":"query-status"}')"

# 4. The destination drops a RAM channel mid-migration: the source names
# the channel, rolls back and its guest verifies; then the same VM goes to
# the destination that refused the bad sources, over 2 channels.
$PEER dst "$D/mig-x.sock" 2 >"$D/peer.out" &
ppid=$!
pids="$pids $ppid"
wait_for "$D/mig-x.sock"
out=$("$V" migrate --control "$D/e.ctl" "unix:$D/mig-x.sock" --channels 2 --json) &&
	fail "migration to a destination that dropped a channel succeeded"
echo "$out" | grep -q 'RAM channel' || fail "the lost channel is not named: $out"
wait $ppid
status_is "$D/e.ctl" running || fail "source not running after a lost channel"
verified "$D/e.ctl" || fail "source guest does not verify after a lost channel"
migrate_ok e h "unix:$D/mig-h.sock" 2
echo "cli-channels: all checks passed"
