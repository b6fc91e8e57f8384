#!/bin/sh
# `vfmig demo --kvm`: the KVM guest runs, migrates live between two VMM
# processes and goes on at the destination, where its own checks and the
# VMM's verifier pass (the report's and query-guest's after it). Where
# /dev/kvm is missing or KVM unusable the demo must say so and run without
# it; the test then checks that and skips (77) with the reason.
# Usage: cli_demo_kvm.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

"$V" demo --kvm --json >"$D/out.txt" 2>"$D/err.txt"; rc=$?
if grep -q "KVM is not usable here" "$D/out.txt"; then
	[ $rc -eq 0 ] || fail "the fallback demo failed ($rc): $(tail -3 "$D/out.txt")"
	tail -1 "$D/out.txt" | grep -q '"verified":true' || fail "fallback not verified"
	echo "SKIP: $(grep -m1 'KVM is not usable' "$D/out.txt")"; exit 77
fi
[ $rc -eq 0 ] || fail "demo --kvm: exit $rc: $(tail -3 "$D/out.txt") $(tail -3 "$D/err.txt")"
grep -q "live migration of a KVM guest" "$D/out.txt" || fail "not the KVM demo: $(head -1 "$D/out.txt")"
grep -q "destination guest (kvm)" "$D/out.txt" || fail "the destination's guest is not the KVM one"
tail -1 "$D/out.txt" | python3 -c "
import json, sys
r = json.load(sys.stdin)
a = r['after_migration']
ok = (r['verified'] and r['verify'] == 'ok' and r['error'] is None and
      a['engine'] == 'kvm' and a['state'] == 'running' and a['error'] is None and
      a['verified'] and a['iterations'] > 0 and
      [d['driver'] for d in a['devices']] == ['kvm-regs', 'kvm-dma'] and
      a['devices'][0]['device_memory_writes'] > 0 and
      a['devices'][1]['completions'] > 0)
sys.exit(0 if ok else 1)" || fail "report: $(tail -1 "$D/out.txt")"
# The usage error: the KVM guest needs its dma device.
"$V" demo --kvm --no-dma >/dev/null 2>"$D/err.txt" && fail "--kvm --no-dma accepted"
grep -q "needs the dma device" "$D/err.txt" || fail "no reason: $(cat "$D/err.txt")"
echo "PASS"
