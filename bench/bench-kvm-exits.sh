#!/bin/sh
# bench-kvm-exits: what one exit of the `vmm --kvm` guest costs. The guest
# (ring 3) times, with its TSC, 2000 each of: a port write the VMM only
# counts (KVM exit + return), a 32-bit read of a dma device register (MMIO
# exit, a REGION_READ message to the device process and its reply, the
# data into the guest's register), and a PCI config read (two port exits,
# one message), and a doorbell write (SQ_TAIL): each round twice, with the
# dma device's ioeventfd registered (the write signals the device inside
# KVM) and with --test-kvm-no-ioeventfd (an MMIO exit and a REGION_WRITE).
# Beside them, in the same run, the VMM times the same REGION_READ made
# directly, without a guest: the exit path's share is the difference.
# Real processes: `vfmig device dma` and `vfmig vmm --kvm`.
#
#   bench/bench-kvm-exits.sh [--rounds N] [VFMIG]
set -u
rounds=3
[ "${1:-}" = --rounds ] && { rounds=$2; shift 2; }
V=${1:-build/src/cli/vfmig}
D=$(mktemp -d /tmp/vfmig-bench-kvm-XXXXXX)
pids=""
stop() { for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done; pids=""; }
trap 'stop; rm -rf "$D"' EXIT
for r in $(seq "$rounds"); do
for mode in ioeventfd no-ioeventfd; do
	extra=""
	[ "$mode" = no-ioeventfd ] && extra=--test-kvm-no-ioeventfd
	rm -f "$D"/*
	"$V" device dma --socket-path "$D/dma.sock" --quiet & pids="$!"
	for _ in $(seq 200); do [ -e "$D/dma.sock" ] && break; sleep 0.02; done
	"$V" vmm --kvm --test-kvm-exit-bench $extra --device "$D/dma.sock" \
		--ram 16M 2>"$D/vmm.log" & pids="$pids $!"
	for _ in $(seq 600); do
		grep -q "exit costs" "$D/vmm.log" 2>/dev/null && break
		if grep -q "KVM is not usable" "$D/vmm.log" 2>/dev/null; then
			cat "$D/vmm.log"; exit 1
		fi
		sleep 0.05
	done
	line=$(grep "exit costs" "$D/vmm.log") || { cat "$D/vmm.log"; exit 1; }
	echo "round $r ($mode): ${line#*kvm: }"
	stop
done
done
