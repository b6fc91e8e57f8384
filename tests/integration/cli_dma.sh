#!/bin/sh
# The dma sample under continuous load through live migrations, as real
# processes: every request completes exactly once and guest RAM holds what
# the workload wrote (the guest verifier), there and back again; then the
# same migration with the device's DMA dirty logging switched off, and with
# the VMM's own dirty tracking switched off: both must be caught by the
# verifier as corruption. Usage: cli_dma.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# submitted CTL: requests the guest submitted to its dma device (dev0).
submitted() {
	ctl "$1" '{"execute":"query-guest"}' |
		python3 -c "import json,sys; print(json.load(sys.stdin)['return']['devices'][0]['doorbells'])"
}

# dmavm NAME DEVOPTS VMMOPTS...: a dma device and a regs device for VM NAME.
dmavm() {
	n=$1; dopt=$2; shift 2
	start "$V" device dma --socket-path "$D/$n-dma.sock" --quiet $dopt
	start "$V" device regs --socket-path "$D/$n-regs.sock" --quiet
	wait_for "$D/$n-dma.sock"; wait_for "$D/$n-regs.sock"
	start "$V" vmm --device "$D/$n-dma.sock" --device "$D/$n-regs.sock" \
		--ram 32M --control "$D/$n.ctl" --quiet "$@"
	wait_for "$D/$n.ctl"
}

# 1. Exactly once under load: A -> B -> A, each side running on.
dmavm a ""
dmavm b "" --incoming "unix:$D/mig-b.sock"
nap 0.5
s0=$(submitted "$D/a.ctl")
[ "$s0" -gt 20 ] || fail "the guest submitted only $s0 requests"
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig-b.sock" --json) || fail "migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "not verified: $out"
status_is "$D/b.ctl" running || fail "destination not running"
nap 0.5
s1=$(submitted "$D/b.ctl")
[ "$s1" -gt "$s0" ] || fail "no requests on the destination ($s0 -> $s1)"
verified "$D/b.ctl" || fail "destination does not verify later: $(ctl "$D/b.ctl" '{"execute":"query-guest","arguments":{"verify":true}}')"
dmavm c "" --incoming "unix:$D/mig-c.sock"
out=$("$V" migrate --control "$D/b.ctl" "unix:$D/mig-c.sock" --json) || fail "migrate back: $out"
[ "$(key "$out" verified)" = True ] || fail "not verified on the way back: $out"
nap 0.3
verified "$D/c.ctl" || fail "third VM does not verify later"

# 1b. The same through the 2019 region-based interface.
dmavm r "--interface region"
dmavm r-dst "--interface region" --incoming "unix:$D/mig-r.sock"
nap 0.5
out=$("$V" migrate --control "$D/r.ctl" "unix:$D/mig-r.sock" --json) || fail "migrate (region): $out"
[ "$(key "$out" verified)" = True ] || fail "not verified (region): $out"

# 2. and 3.: a migration that loses dirty pages must not verify. They
# write format 1.0 (--stream-checksum crc32), whose RAM pages are copied
# before they are checksummed, so the verifier is what has to catch the
# loss; 2b is the default format. The
# workload makes that certain: the engine rewrites its 6 MiB of results
# (and its completion rings) many times during a single pass over RAM,
# and the CPU writes stamps, the ledger and descriptors all the time. The
# pass is held to 20 MB/s (about half a second): unlimited it can take
# 60 ms, and once in a CI run the device, starved of CPU, wrote nothing in
# that window, so nothing was lost.
pair() { # pair NAME DEVOPT VMMOPT: NAME's VM and a destination for it
	dmavm "$1" "$2" $3
	dmavm "$1-dst" "" --incoming "unix:$D/mig-$1.sock"
	nap 0.5
}
pair d --test-skip-dirty-log ""
out=$("$V" migrate --control "$D/d.ctl" --max-bandwidth 20M --stream-checksum crc32 \
	"unix:$D/mig-d.sock" --json) &&
	fail "lost device DMA pages verified: $out"
[ "$(key "$out" verified)" = False ] || fail "verified without DMA dirty logging: $out"
[ "$(key "$out" error)" = None ] || fail "the migration itself failed: $out"
echo "device logging off: $(key "$out" verify)"
case "$(key "$out" verify)" in *dev0*) ;; *) fail "the dma device not named: $out" ;; esac

# 2b. The same in the default format (1.3): RAM pages go out straight from
# guest memory with a checksum each, so a page the device wrote while it
# was sent arrives torn; without the device's dirty log nothing sends it
# again. The destination then refuses the stream at its END, naming the
# page (or, if no page happened to tear, the verifier catches the loss);
# either way the source runs on.
pair g --test-skip-dirty-log ""
out=$("$V" migrate --control "$D/g.ctl" --max-bandwidth 20M "unix:$D/mig-g.sock" --json) &&
	fail "lost device DMA pages verified (1.3): $out"
[ "$(key "$out" verified)" = False ] || fail "verified without DMA dirty logging (1.3): $out"
case "$(key "$out" error)" in
None) echo "device logging off, 1.3: $(key "$out" verify)" ;;
*"arrived torn and were not carried again"*) echo "device logging off, 1.3: $(key "$out" error)" ;;
*) fail "the 1.3 migration failed otherwise: $out" ;;
esac
status_is "$D/g.ctl" running || fail "the source does not run on after the refused stream"

pair e "" --test-skip-dirty-tracking
out=$("$V" migrate --control "$D/e.ctl" --max-bandwidth 20M --stream-checksum crc32 \
	"unix:$D/mig-e.sock" --json) &&
	fail "lost CPU pages verified: $out"
[ "$(key "$out" verified)" = False ] || fail "verified without VMM dirty tracking: $out"
[ "$(key "$out" error)" = None ] || fail "the migration itself failed: $out"
echo "VMM tracking off: $(key "$out" verify)"
exit 0
