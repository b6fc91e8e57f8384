#!/bin/sh
# `vfmig vmm --kvm`: the project's guest image on a KVM vCPU drives two real
# `vfmig device dma` processes through vfio-user (and writes and reads back
# the mappable BAR of a regs device, a KVM memory slot: no exits, and the
# device reads what it wrote; with --test-kvm-no-bar-mmap the same through
# exits): its counters grow, its own checks and the VMM's
# verifier agree, interrupts arrive on both vectors of each device; stop
# freezes it and cont resumes it; saved to a file (vfmig inspect shows its
# vCPU section by field name) and loaded into a new VMM, it runs on there.
# With the MSI-X irqfds withheld (--test-kvm-no-irqfd) the guest must
# report the interrupt it missed. Skipped (77) where KVM is not usable.
# Usage: cli_kvm.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

need_kvm

# expect CTL WHAT EXPR...: one query-guest; every EXPR (Python over its
# reply g) must hold, else fail naming WHAT, the EXPR and the reply.
expect() {
	c=$1; what=$2; shift 2
	python3 - "$c" "$@" <<'PY' >"$D/expect.txt" 2>&1 || fail "$what: $(cat "$D/expect.txt")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile()
f.readline()
s.sendall(b'{"execute":"query-guest"}\n')
while True:
    r = json.loads(f.readline())
    if "event" not in r:
        break
g = r["return"]
for e in sys.argv[2:]:
    if not eval(e):
        print("not %s in %s" % (e, json.dumps(g)))
        sys.exit(1)
PY
}

start "$V" device dma --socket-path "$D/dma0.sock" --quiet
start "$V" device regs --socket-path "$D/regs.sock" --quiet
start "$V" device dma --socket-path "$D/dma1.sock" --quiet
wait_for "$D/dma0.sock"; wait_for "$D/regs.sock"; wait_for "$D/dma1.sock"
"$V" vmm --kvm --device "$D/dma0.sock" --device "$D/regs.sock" \
	--device "$D/dma1.sock" --ram 32M --control "$D/a.ctl" \
	--guest-dirty-pages 8 2>"$D/a.log" &
vmm=$!; pids="$pids $vmm"
for _ in $(seq 200); do
	[ -e "$D/a.ctl" ] && break
	if ! kill -0 "$vmm" 2>/dev/null; then
		if grep -q "KVM is not usable" "$D/a.log"; then
			echo "SKIP: $(grep -m1 'KVM is not usable' "$D/a.log")"; exit 77
		fi
		fail "vmm --kvm exited: $(cat "$D/a.log")"
	fi
	sleep 0.05
done
wait_for "$D/a.ctl"

# Booted, found both dma devices (slots 0 and 2) and the regs device's
# mappable BAR (slot 1), which became a memory slot where the guest put it
# (moved once, decoding off and on: the guest checks a word survives).
for _ in $(seq 100); do
	[ "$(guest "$D/a.ctl" "g['iterations'] > 5")" = True ] && break
	sleep 0.05
done
expect "$D/a.ctl" "boot" "g['engine'] == 'kvm'" \
	"[d['driver'] for d in g['devices']] == ['kvm-dma', 'kvm-regs', 'kvm-dma']"
grep -q "kvm: guest running, 2 dma devices" "$D/a.log" || fail "no boot message"
grep -q "kvm: dev1: BAR 2 at 0xe00[0-9a-f]*: 1 mmap'ed part as memory slot" \
	"$D/a.log" || fail "no memory slot for the regs BAR: $(grep kvm: "$D/a.log")"

# Progress: iterations, completions and interrupts grow on both devices.
# Each round the guest waited for the interrupt of both queues, and each
# one it waited for was counted by its interrupt handler; its RAM stamps
# and re-checks go on; its checks and the VMM's verifier agree.
i0=$(guest "$D/a.ctl" "g['iterations'], g['devices'][0]['completions'], g['devices'][2]['completions']")
sleep 0.5
expect "$D/a.ctl" "progress" "g['iterations'] > ($i0)[0]" \
	"g['devices'][0]['completions'] > ($i0)[1]" \
	"g['devices'][2]['completions'] > ($i0)[2]" \
	"all(g['devices'][d]['irq_raised'] >= 2 * g['devices'][d]['checksums'] > 0 for d in (0, 2))" \
	"all(g['devices'][d]['irq_received'] >= g['devices'][d]['irq_raised'] for d in (0, 2))" \
	"all(g['devices'][d]['copies'] == g['devices'][d]['fills'] == g['devices'][d]['checksums'] for d in (0, 2))" \
	"g['ram_checks'] > 0 and g['ram_stamps'] >= 8 * (g['iterations'] - 1)" \
	"g['devices'][1]['device_memory_writes'] >= g['iterations'] - 1 > 0" \
	"(g['verified'], g['verify'], g['state'], g['error']) == (True, 'ok', 'running', None)"

# stop freezes the vCPU (counters stand still, verification holds), cont
# lets it go on.
ctl "$D/a.ctl" '{"execute":"stop"}' | grep -q return || fail "stop"
p0=$(guest "$D/a.ctl" "g['iterations'], g['ram_stamps']")
sleep 0.3
expect "$D/a.ctl" "stopped" "(g['iterations'], g['ram_stamps']) == ($p0)" \
	"g['state'] == 'paused'" "g['verified']"
ctl "$D/a.ctl" '{"execute":"cont"}' | grep -q return || fail "cont"
sleep 0.3
expect "$D/a.ctl" "after cont" "g['iterations'] > ($p0)[0]" "g['verified']"

# A CRC-32 stream (format 1.0) cannot carry the vCPU: refused at setup,
# before a file is made, and the guest runs on.
"$V" migrate --control "$D/a.ctl" "file:$D/crc.mig" --stream-checksum crc32 \
	>"$D/crc.out" 2>&1 && fail "a crc32 stream of a --kvm VM was written"
grep -q "setup: stream checksum crc32 writes format 1.0" "$D/crc.out" ||
	fail "the crc32 refusal is unclear: $(cat "$D/crc.out")"
[ -e "$D/crc.mig" ] && fail "the refused save left a file"
status_is "$D/a.ctl" running || fail "the guest does not run after the refusal"

# Saved to a file (the same flow as a migration, paused first), the VM
# stays paused here; the file's vCPU section prints by field name; loaded
# into a new VMM with its own devices, the guest goes on from where it was.
out=$("$V" migrate --control "$D/a.ctl" "file:$D/x.mig" --json 2>&1) ||
	fail "save: $out"
s0=$(guest "$D/a.ctl" "g['iterations']")
m0=$(guest "$D/a.ctl" "g['devices'][1]['device_memory_writes']")
"$V" inspect "$D/x.mig" >"$D/inspect.txt" 2>&1 || fail "inspect: $(tail -3 "$D/inspect.txt")"
for f in "VCPU_STATE" "state 'kvm-vcpu' version 1" "rip (u64)" "cs.l (u8) = 1" \
	"efer (u64) = 1280" "msr_lstar (u64)" "xsave (bytes)" "lapic (bytes)" \
	"mp_state (u32)" "pci_cf8 (u32)"; do
	grep -qF "$f" "$D/inspect.txt" || fail "inspect shows no '$f'"
done
start "$V" device dma --socket-path "$D/c0.sock" --quiet
start "$V" device regs --socket-path "$D/c1.sock" --quiet
start "$V" device dma --socket-path "$D/c2.sock" --quiet
wait_for "$D/c0.sock"; wait_for "$D/c1.sock"; wait_for "$D/c2.sock"
start "$V" vmm --kvm --device "$D/c0.sock" --device "$D/c1.sock" \
	--device "$D/c2.sock" --ram 32M --control "$D/c.ctl" \
	--incoming "file:$D/x.mig"
wait_for "$D/c.ctl"
status_is "$D/c.ctl" running || fail "the loaded VM does not run"
# Its regs BAR's memory slot is where the loaded config space put it.
grep -q "kvm: dev1: BAR 2 at 0xe00[0-9a-f]*: 1 mmap'ed part as memory slot" \
	"$D/procs.log" || fail "the loaded VM has no memory slot for the regs BAR"
sleep 0.5
expect "$D/c.ctl" "loaded from the file" "g['iterations'] > $s0" \
	"[d['driver'] for d in g['devices']] == ['kvm-dma', 'kvm-regs', 'kvm-dma']" \
	"g['devices'][1]['device_memory_writes'] > $m0" \
	"(g['verified'], g['verify'], g['state'], g['error']) == (True, 'ok', 'running', None)"
# A file without vCPU state (a driver thread's VM) is refused by name.
start "$V" device dma --socket-path "$D/t.sock" --quiet
wait_for "$D/t.sock"
start "$V" vmm --device "$D/t.sock" --ram 32M --control "$D/t.ctl" --quiet
wait_for "$D/t.ctl"
"$V" migrate --control "$D/t.ctl" "file:$D/t.mig" >/dev/null || fail "save t"
start "$V" device dma --socket-path "$D/u.sock" --quiet
wait_for "$D/u.sock"
"$V" vmm --kvm --device "$D/u.sock" --ram 32M --incoming "file:$D/t.mig" \
	--control "$D/u.ctl" 2>"$D/u.log" &
u=$!; pids="$pids $u"
wait_for "$D/u.ctl"
for _ in $(seq 100); do grep -q "no vCPU state" "$D/u.log" && break; sleep 0.05; done
grep -q "the stream brought no vCPU state" "$D/u.log" ||
	fail "a file without vCPU state: $(tail -3 "$D/u.log")"
ctl "$D/u.ctl" '{"execute":"query-status"}' | grep -q '"status": *"running"' &&
	fail "ran a guest without its vCPU state"

# Option errors.
"$V" vmm --kvm --device "$D/dma0.sock" --fill 1M 2>"$D/err.txt" &&
	fail "--kvm --fill accepted"
"$V" vmm --kvm --device "$D/dma0.sock" --ram 4M 2>"$D/err.txt" &&
	fail "--kvm --ram 4M accepted"
grep -q "needs 8 MiB to 3584 MiB" "$D/err.txt" || fail "no RAM message: $(cat "$D/err.txt")"
kill "$vmm"; wait "$vmm" || fail "vmm --kvm did not exit cleanly"
# The guest's BAR accesses to regs (its only ones) never exited.
grep -q "kvm: dev1: [0-9]* config and 0 BAR accesses by exit" "$D/a.log" ||
	fail "regs BAR accesses exited: $(grep 'accesses by exit' "$D/a.log")"

# Without the memory slot the same guest works through exits and messages:
# every word it writes and reads back is one.
start "$V" device dma --socket-path "$D/dma4.sock" --quiet
start "$V" device regs --socket-path "$D/regs4.sock" --quiet
wait_for "$D/dma4.sock"; wait_for "$D/regs4.sock"
"$V" vmm --kvm --device "$D/dma4.sock" --device "$D/regs4.sock" --ram 16M \
	--control "$D/e.ctl" --test-kvm-no-bar-mmap 2>"$D/e.log" &
e=$!; pids="$pids $e"
wait_for "$D/e.ctl"
for _ in $(seq 100); do
	[ "$(guest "$D/e.ctl" "g['devices'][1]['device_memory_writes'] > 3")" = True ] && break
	sleep 0.05
done
expect "$D/e.ctl" "regs BAR through exits" \
	"[d['driver'] for d in g['devices']] == ['kvm-dma', 'kvm-regs']" \
	"g['devices'][1]['device_memory_writes'] > 3" \
	"(g['verified'], g['verify'], g['state'], g['error']) == (True, 'ok', 'running', None)"
em=$(guest "$D/e.ctl" "g['devices'][1]['device_memory_writes']")
kill "$e"; wait "$e" || fail "vmm --kvm --test-kvm-no-bar-mmap did not exit cleanly"
grep -q "memory slot" "$D/e.log" && fail "--test-kvm-no-bar-mmap made a memory slot"
n=$(sed -n 's/.*kvm: dev1: [0-9]* config and \([0-9]*\) BAR accesses by exit.*/\1/p' "$D/e.log")
[ -n "$n" ] && [ "$n" -ge $((2 * 64 * em)) ] ||
	fail "regs BAR accesses by exit: '$n' for $em rounds of 64 words written and read"

# Without irqfds no interrupt reaches the guest: it must say so, and the
# verifier must fail with its words.
start "$V" device dma --socket-path "$D/dma3.sock" --quiet
wait_for "$D/dma3.sock"
start "$V" vmm --kvm --device "$D/dma3.sock" --ram 16M --control "$D/b.ctl" \
	--quiet --test-kvm-no-irqfd
wait_for "$D/b.ctl"
for _ in $(seq 150); do
	[ "$(guest "$D/b.ctl" "g['state']")" = failed ] && break
	sleep 0.1
done
expect "$D/b.ctl" "missing interrupts unnoticed" "g['state'] == 'failed'" \
	"'no MSI-X interrupt' in g['error']" "not g['verified']" \
	"'no MSI-X interrupt' in g['verify']"
echo "PASS"
