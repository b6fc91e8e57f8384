#!/bin/sh
# Live migration of a running `vfmig vmm --kvm` VM (the project's guest on
# a KVM vCPU driving a `vfmig device dma` process), all real processes:
# 1. KVM's dirty log: the guest stamps RAM pages while pre-copy sends them;
#    the pages it wrote after they were sent are sent again (the verifier
#    on the destination recomputes every stamp page), and with the vCPU's
#    dirty log switched off (--test-kvm-no-dirty-log) the loss must be
#    caught: a page torn in flight refused at END, or the verifier's
#    failed stamp pages;
# 2. back and forth ten times: on every hop the guest's counters go on
#    strictly increasing, its own checks stay clean and the verifier
#    passes on both sides;
# 3. DMA requests in flight at the switchover: with the device moving
#    1 MB/s (--rate 1) the guest always has requests posted; the source
#    saves them in flight, the destination's device finishes them and the
#    guest checks each completion itself.
# Skipped (77) where KVM is not usable. Usage: cli_kvm_mig.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

need_kvm

# key JSON KEY: a key of a migration report.

# running CTL N: wait until the guest did N iterations.
running() {
	for _ in $(seq 100); do
		[ "$(guest "$1" "g['iterations'] >= $2")" = True ] && return 0
		sleep 0.1
	done
	fail "$1: the guest does not get to $2 iterations"
}

# 1. KVM's dirty log.
kvmvm a "" --guest-dirty-pages 32
kvmvm b "" --incoming "unix:$D/mig-b.sock"
running "$D/a.ctl" 20
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig-b.sock" --json) ||
	fail "migrate a -> b: $out"
[ "$(key "$out" verified)" = True ] || fail "a -> b not verified: $out"
line=$(grep "kvm: dirty log off" "$D/a.log") || fail "no dirty-log summary in a.log"
echo "$line" | python3 -c "
import re, sys
m = re.search(r'(\d+) syncs, (\d+) pages the vCPU dirtied', sys.stdin.read())
sys.exit(not (m and int(m.group(1)) >= 2 and int(m.group(2)) > 0))" ||
	fail "the dirty log found nothing: $line"
grep -q "VM: running -> finish-migrate" "$D/a.log" || fail "a was not live"

kvmvm c "" --guest-dirty-pages 32 --test-kvm-no-dirty-log
kvmvm d "" --incoming "unix:$D/mig-d.sock"
running "$D/c.ctl" 20
# In the default format (1.3) a page the vCPU wrote while it was being sent
# arrives torn, and with no dirty log nothing sends it again: the
# destination refuses the stream at its END, naming the page, and c runs
# on. If no page happened to tear, the verifier catches the lost stamps.
# The pass is held to 20 MB/s (about half a second) so that the vCPU writes
# while pages are in flight: unlimited, the VM's 7 MiB of data went in
# 50 ms, and once in CI the vCPU wrote nothing in that window.
out=$("$V" migrate --control "$D/c.ctl" --max-bandwidth 20M "unix:$D/mig-d.sock" --json) || true
[ "$(key "$out" verified)" = False ] ||
	fail "without the vCPU's dirty log the migration verified: $out"
case "$(key "$out" error)" in
None) key "$out" verify | grep -q "RAM stamp page" ||
	fail "not caught as lost stamp writes: $out"
	echo "no dirty log: $(key "$out" verify)" ;;
*"arrived torn and were not carried again"*)
	[ "$(guest "$D/c.ctl" "g['state']")" = running ] ||
		fail "c does not run on after the refused stream: $out"
	echo "no dirty log: $(key "$out" error)" ;;
*) fail "without the vCPU's dirty log the migration failed otherwise: $out" ;;
esac

# 2. Back and forth ten times, from b (running since step 1).
cur=b
prev=$(guest "$D/b.ctl" "g['iterations'], g['devices'][0]['completions']")
for i in 1 2 3 4 5 6 7 8 9 10; do
	if [ $((i % 2)) = 1 ]; then n=x$i; else n=y$i; fi
	kvmvm "$n" "" --incoming "unix:$D/mig-$n.sock"
	[ "$(guest "$D/$cur.ctl" "(g['verified'], g['state'], g['error'])")" = \
		"(True, 'running', None)" ] || fail "hop $i: the source $cur is not clean"
	out=$("$V" migrate --control "$D/$cur.ctl" "unix:$D/mig-$n.sock" --json) ||
		fail "hop $i ($cur -> $n): $out"
	echo "$out" | grep -q '"verified":true' || fail "hop $i not verified: $out"
	sleep 0.3
	# One look: "ok" (or what is wrong), then the counters.
	r=$(guest "$D/$n.ctl" "('ok' if g['iterations'] > ($prev)[0] and g['devices'][0]['completions'] > ($prev)[1] and (g['verified'], g['state'], g['error']) == (True, 'running', None) else json.dumps(g)) + '|' + repr((g['iterations'], g['devices'][0]['completions']))")
	[ "${r%%|*}" = ok ] || fail "hop $i: after $prev: ${r%%|*}"
	prev=${r#*|}
	eval "kill \$pid_$cur" # done with it: the VM lives on in $n
	cur=$n
done

# 3. DMA requests in flight across the switchover. Whether the vCPU stops
# with requests outstanding depends on where the guest is in its loop (it
# also checks results and waits for interrupts), so each migration that
# caught none is followed by another, up to five.
kvmvm e "--rate 1"
running "$D/e.ctl" 3
src=e n0=0
for n in f g h i j; do
	kvmvm "$n" "--rate 1" --incoming "unix:$D/mig-$n.sock"
	out=$("$V" migrate --control "$D/$src.ctl" "unix:$D/mig-$n.sock" --json) ||
		fail "migrate $src -> $n: $out"
	[ "$(key "$out" verified)" = True ] || fail "$src -> $n not verified: $out"
	n0=$(sed -n 's/.*vCPU state saved.* \([0-9]*\) DMA requests in flight.*/\1/p' "$D/$src.log" | tail -1)
	n1=$(sed -n 's/.*resumed from its migrated vCPU state.* \([0-9]*\) DMA requests in flight.*/\1/p' "$D/$n.log" | tail -1)
	[ -n "$n0" ] && [ "$n0" = "$n1" ] ||
		fail "requests in flight ($src -> $n): saved '$n0', resumed '$n1'"
	prev=$src src=$n
	[ "$n0" -gt 0 ] && break
	it=$(guest "$D/$n.ctl" "g['iterations']")
	running "$D/$n.ctl" $((it + 2))
done
[ "$n0" -gt 0 ] || fail "five migrations of a guest on a --rate 1 dma device, none with a DMA request in flight"
sub=$(guest "$D/$prev.ctl" "g['devices'][0]['doorbells']")
for _ in $(seq 50); do
	[ "$(guest "$D/$src.ctl" "g['devices'][0]['completions'] > $sub")" = True ] && break
	sleep 0.1
done
[ "$(guest "$D/$src.ctl" "g['devices'][0]['completions'] > $sub and (g['verified'], g['state'], g['error']) == (True, 'running', None)")" = True ] ||
	fail "the $n0 requests in flight did not complete cleanly: $(guest "$D/$src.ctl" "g")"
echo "PASS"
