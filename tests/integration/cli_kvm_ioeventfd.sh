#!/bin/sh
# Doorbells through ioeventfds under `vfmig vmm --kvm`, all real processes:
# 1. the dma device offers an ioeventfd for its doorbell (SQ_TAIL); the
#    VMM registers it with KVM where the guest placed BAR0 (and moves it
#    when the guest moves BAR0 and back at boot); the guest's
#    doorbell writes then never exit (the VMM's exit report counts 0 writes
#    to that register) and still work: its requests complete, its own
#    checks and the verifier pass;
# 2. the same guest with --test-kvm-no-ioeventfd: every doorbell exits
#    (the report counts at least one per round) and works as before;
# 3. a live migration with ioeventfds on both sides: the destination
#    registers its own device's, the guest goes on there (completions
#    grow, checks clean, verified) and its doorbells do not exit either;
# 4. a destination whose first incoming migration fails after it set up
#    its bus (it verified the guest, sent RESUMED, and the source is lost
#    before COMMIT) listens again, and the second source's migration gets
#    the same clean setup: its ioeventfd is registered anew (no
#    warning), the doorbells still do not exit, and the first attempt's
#    eventfds are not left behind. (The BAR memory slots released with
#    them are not exercised: the dma sample's BAR is not mappable.)
# Skipped (77) where KVM is not usable. Usage: cli_kvm_ioeventfd.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

need_kvm

# running CTL N: wait until the guest did N iterations (fail at once when
# it reports an error; give up after about 100 looks).
running() {
	for _ in $(seq 100); do
		case $(guest "$1" "'failed' if g['error'] else g['iterations'] >= $2") in
		True) return 0 ;;
		failed) fail "$1: the guest failed: $(guest "$1" "g['error']")" ;;
		esac
		sleep 0.2
	done
	fail "$1: the guest does not get to $2 iterations: $(guest "$1" "g")"
}
# stopvm NAME: end the VMM (its exit report goes to NAME.log).
stopvm() {
	eval "p=\$pid_$1"
	kill "$p"; wait "$p" || fail "vmm $1 did not exit cleanly: $(tail -3 "$D/$1.log")"
}
# doorbell_exits NAME: the writes to dev0's ioeventfd registers that exited.
doorbell_exits() {
	sed -n 's/.*kvm: dev0: [0-9]* config and [0-9]* BAR accesses by exit, \([0-9]*\) of them writes to its ioeventfd registers.*/\1/p' "$D/$1.log"
}
clean() {
	[ "$(guest "$1" "g['error'] is None and g['state'] == 'running'")" = True ] ||
		fail "$1: guest not clean: $(guest "$1" "g")"
	verified "$1" || fail "$1: not verified: $(ctl "$1" '{"execute":"query-guest"}')"
}

# 1. With the ioeventfd.
kvmvm a ""
running "$D/a.ctl" 20
grep -q "kvm: dev0: BAR 0 offset 0x1c (4 bytes): ioeventfd offered$" "$D/a.log" ||
	fail "no ioeventfd offered for the doorbell: $(grep kvm: "$D/a.log")"
# The guest moves BAR0 to 0xfebff000 and back at boot: the ioeventfd
# follows it there and back (the last place is where BAR0 stays).
grep "ioeventfd at" "$D/a.log" | sed 's/.*ioeventfd at //' | tr '\n' ' ' >"$D/places"
[ "$(cat "$D/places")" = "0xe000001c 0xfebff01c 0xe000001c " ] ||
	fail "the doorbell's ioeventfd did not follow BAR0 (0xe000001c, 0xfebff01c, back): $(cat "$D/places")"
clean "$D/a.ctl"
done_a=$(guest "$D/a.ctl" "g['devices'][0]['completions']")
[ "$done_a" -ge 60 ] || fail "a: $done_a completions after 20 rounds"
stopvm a
n=$(doorbell_exits a)
[ "$n" = 0 ] || fail "a: $n doorbell writes exited with the ioeventfd registered"

# 2. Without it: the same guest, through exits.
kvmvm c "" --test-kvm-no-ioeventfd
running "$D/c.ctl" 20
grep -q "ioeventfd at" "$D/c.log" && fail "--test-kvm-no-ioeventfd registered one"
clean "$D/c.ctl"
rounds=$(guest "$D/c.ctl" "g['iterations']")
stopvm c
n=$(doorbell_exits c)
[ -n "$n" ] && [ "$n" -ge "$rounds" ] ||
	fail "c: '$n' doorbell exits for $rounds rounds without the ioeventfd"

# 3. Live migration, ioeventfds on both sides.
kvmvm e ""
kvmvm f "" --incoming "unix:$D/mig-f.sock"
running "$D/e.ctl" 20
out=$("$V" migrate --control "$D/e.ctl" "unix:$D/mig-f.sock" --json) ||
	fail "migrate e -> f: $out"
[ "$(key "$out" verified)" = True ] || fail "e -> f not verified: $out"
grep -q "kvm: dev0: BAR 0 offset 0x1c: ioeventfd at 0xe000001c" "$D/f.log" ||
	fail "the destination did not register its device's ioeventfd: $(grep kvm: "$D/f.log")"
before=$(guest "$D/f.ctl" "g['devices'][0]['completions']")
running "$D/f.ctl" "$(($(guest "$D/f.ctl" "g['iterations']") + 20))"
clean "$D/f.ctl"
after=$(guest "$D/f.ctl" "g['devices'][0]['completions']")
[ "$after" -ge $((before + 60)) ] ||
	fail "f: completions went from $before to $after in 20 rounds"
stopvm f
n=$(doorbell_exits f)
[ "$n" = 0 ] || fail "f: $n doorbell writes exited on the destination"

# 4. A failed incoming migration after the bus was set up, then another.
kvmvm g ""
kvmvm h "" --test-hold "commit:$D/hold-g"
kvmvm i "" --incoming "unix:$D/mig-i.sock"
running "$D/g.ctl" 10
running "$D/h.ctl" 10
"$V" migrate --control "$D/h.ctl" "unix:$D/mig-i.sock" >"$D/mig-h.out" 2>&1 &
mig=$!
hold_wait "$D/hold-g" $mig "$D/mig-h.out"
grep -q "kvm: dev0: BAR 0 offset 0x1c: ioeventfd at 0xe000001c" "$D/i.log" ||
	fail "i did not set up its bus in the first attempt: $(grep kvm: "$D/i.log")"
# What one attempt's bus holds: its eventfds (the doorbell's ioeventfd,
# the guest's irqfds); the second attempt must end up with no more.
eventfds() { ls -l /proc/"$pid_i"/fd | grep -c 'anon_inode:\[eventfd\]'; }
efd_before=$(eventfds)
[ "$efd_before" -ge 1 ] || fail "i holds no eventfds in its first attempt"
kill -KILL "$pid_h"
wait $mig
listening_again "$D/i.ctl"
out=$("$V" migrate --control "$D/g.ctl" "unix:$D/mig-i.sock" --json) ||
	fail "migrate g -> i (second attempt): $out"
[ "$(key "$out" verified)" = True ] || fail "g -> i not verified: $out"
[ "$(grep -c "kvm: dev0: BAR 0 offset 0x1c: ioeventfd at 0xe000001c" "$D/i.log")" = 2 ] ||
	fail "i did not register its ioeventfd once per attempt: $(grep "kvm: dev0" "$D/i.log" | tr "\n" "|")"
grep "kvm: dev0:.*\(no memory slot\|KVM_IOEVENTFD at\)" "$D/i.log" &&
	fail "the second attempt's bus setup met the first one's leftovers"
efd_after=$(eventfds)
[ "$efd_after" -le "$efd_before" ] ||
	fail "i kept the first attempt's eventfds: $efd_before in the first attempt, $efd_after after the second"
running "$D/i.ctl" "$(($(guest "$D/i.ctl" "g['iterations']") + 20))"
clean "$D/i.ctl"
stopvm i
n=$(doorbell_exits i)
[ "$n" = 0 ] || fail "i: $n doorbell writes exited after the second attempt"

echo "ok: 0 doorbell exits with ioeventfds (source and destination), $(doorbell_exits c) for $rounds rounds without"
