#!/bin/sh
# `vfmig vmm --no-data-channel`: the VMM offers its devices no migration
# data channel, so their state goes in MIG_DATA_READ/WRITE messages. A VM
# with vram devices (state that is worth moving) migrates with the flag on
# the source, on the destination, on both and on neither, and back again;
# each time the device logs show which path each side took and the guest
# verifier checks every RAM fill byte and every VRAM fill (replayed
# checksums). Real device and VMM processes. Usage: cli_data_channel.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# used NAME WAY: NAME's device log says it took its save or load session
# (WAY: saving or loading) on the data channel.
used() { grep -q "data channel attached for $2" "$D/$1-dev.log"; }
# moved NAME WAY: a session of NAME's device moved bytes (either path).
moved() { grep -q "$1 session closed after [1-9][0-9]* bytes" "$D/$2-dev.log"; }

# run SRC-FLAG DST-FLAG TAG: a fresh pair, SRC migrated into DST.
run() {
	src=s$3 dst=d$3
	if [ "$1" = off ]; then vvm $src --fill 4M --no-data-channel
	else vvm $src --fill 4M; fi
	if [ "$2" = off ]; then
		vvm $dst --incoming "unix:$D/mig-$3.sock" --no-data-channel
	else vvm $dst --incoming "unix:$D/mig-$3.sock"; fi
	sleep 0.4 # the guest fills VRAM pages meanwhile
	out=$("$V" migrate --control "$D/$src.ctl" "unix:$D/mig-$3.sock" --json) ||
		fail "$3: migrate: $out"
	[ "$(key "$out" verified)" = True ] || fail "$3: not verified: $out"
	dev=$(echo "$out" | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin)['bytes']['device'])")
	[ "$dev" -gt 16384 ] || fail "$3: only $dev device bytes moved: $out"
	moved save $src || fail "$3: the source device saved nothing"
	moved load $dst || fail "$3: the destination device loaded nothing"
	if [ "$1" = off ]; then
		used $src saving && fail "$3: source used the data channel"
	else
		used $src saving || fail "$3: source did not use the data channel"
	fi
	if [ "$2" = off ]; then
		used $dst loading && fail "$3: destination used the data channel"
	else
		used $dst loading || fail "$3: destination did not use the data channel"
	fi
	status_is "$D/$dst.ctl" running || fail "$3: destination not running"
	verified "$D/$dst.ctl" || fail "$3: destination guest does not verify later"
}

run off on src-off
run on off dst-off
run off off both-off
run on on both-on

# Back again with the flags the other way round: the VM that came in
# without a channel (dboth-off) leaves into a VMM that has one; the one
# that came in with one (dboth-on) leaves into one that has none.
vvm back1 --incoming "unix:$D/mig-back1.sock"
vvm back2 --incoming "unix:$D/mig-back2.sock" --no-data-channel
out=$("$V" migrate --control "$D/dboth-off.ctl" "unix:$D/mig-back1.sock" --json) ||
	fail "back1: $out"
[ "$(key "$out" verified)" = True ] || fail "back1: not verified: $out"
used dboth-off saving && fail "back1: a --no-data-channel source used the channel"
used back1 loading || fail "back1: destination did not use the data channel"
out=$("$V" migrate --control "$D/dboth-on.ctl" "unix:$D/mig-back2.sock" --json) ||
	fail "back2: $out"
[ "$(key "$out" verified)" = True ] || fail "back2: not verified: $out"
used dboth-on saving || fail "back2: source did not use the data channel"
used back2 loading && fail "back2: a --no-data-channel destination used the channel"
verified "$D/back1.ctl" || fail "back1: guest does not verify later"
verified "$D/back2.ctl" || fail "back2: guest does not verify later"
echo "cli-data-channel: ok"
