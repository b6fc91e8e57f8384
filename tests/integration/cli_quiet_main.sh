#!/bin/sh
# RAM channels at a low bandwidth limit: the first pre-copy round moves
# all the RAM over `--channels 2` for longer than the destination's 30 s
# read timeout while the main stream carries nothing (one small regs
# device). The destination must not take the quiet main stream for a
# stalled one while the RAM channels receive (vfmig_chan_share_progress):
# the migration completes and verifies. Before, it failed after 30 s with
# "load: reading record ...: Connection timed out".
# Usage: cli_quiet_main.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

for n in a b; do start "$V" device regs --socket-path "$D/$n.sock" --quiet; done
for n in a b; do wait_for "$D/$n.sock"; done
start "$V" vmm --device "$D/a.sock" --ram 16M --control "$D/a.ctl" --quiet --fill 10M \
	--guest-interval-us 200000
start "$V" vmm --device "$D/b.sock" --ram 16M --control "$D/b.ctl" --quiet \
	--incoming "unix:$D/mig.sock"
wait_for "$D/a.ctl"; wait_for "$D/b.ctl"; wait_for "$D/mig.sock"
nap 0.3

# 10 MiB at 256 KiB/s: about 40 s in the first round; the guest (an
# iteration every 200 ms) dirties far less than the limit, so it converges.
t0=$(date +%s)
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig.sock" --channels 2 \
	--max-bandwidth 256K --json 2>&1) ||
	fail "the migration failed: $(echo "$out" | tail -3)"
t1=$(date +%s)
echo "$out" | tail -1 | grep -q '"verified":true' || fail "not verified: $out"
# The point of the test: the main stream was quiet for longer than the
# destination's read timeout.
[ $((t1 - t0)) -gt 30 ] ||
	fail "the migration took $((t1 - t0)) s: the main stream was never quiet for 30 s"
status_is "$D/b.ctl" running || fail "the destination does not run"
verified "$D/b.ctl" || fail "the destination's guest does not verify"
echo "ok: $((t1 - t0)) s with a quiet main stream"
