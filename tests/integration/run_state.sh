#!/bin/sh
# What a migration carries besides memory and devices, and how much of it is
# copied live: the run state travels (a paused source arrives paused, and
# `vmm --incoming ... --paused` keeps a running one paused), and
# `migrate --precopy none|ram` migrates with no pre-copy at all or RAM-only
# pre-copy; `--stream-checksum crc32` writes a stream older readers take.
# Real device and VMM processes. Usage: run_state.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# 1. A paused source arrives paused, its devices in STOP; cont runs it.
vm a
vm b --incoming "unix:$D/mig-b.sock"
nap 0.3
ctl "$D/a.ctl" '{"execute":"stop"}' | grep -q '"return"' || fail "stop"
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig-b.sock" --json) || fail "migrate paused: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "paused migration not verified: $out"
status_is "$D/b.ctl" paused || fail "a paused source arrived $(ctl "$D/b.ctl" '{"execute":"query-status"}')"
ctl "$D/b.ctl" '{"execute":"query-devices"}' | grep -q '"migration_state": *"STOP"' ||
	fail "devices of the paused destination not in STOP"
ctl "$D/b.ctl" '{"execute":"cont"}' | grep -q '"return"' || fail "cont on the destination"
status_is "$D/b.ctl" running || fail "destination not running after cont"
verified "$D/b.ctl" || fail "destination guest does not verify after cont"

# 2. A running source to a destination started with --paused: paused.
vm c --incoming "unix:$D/mig-c.sock" --paused
nap 0.2
out=$("$V" migrate --control "$D/b.ctl" "unix:$D/mig-c.sock" --json) || fail "migrate to --paused: $out"
status_is "$D/c.ctl" paused || fail "--paused destination is $(ctl "$D/c.ctl" '{"execute":"query-status"}')"
ctl "$D/c.ctl" '{"execute":"cont"}' | grep -q '"return"' || fail "cont after --paused"
status_is "$D/c.ctl" running || fail "not running after cont"
verified "$D/c.ctl" || fail "guest does not verify after --paused and cont"

# 3. No pre-copy at all: zero rounds, a running guest arrives running.
vm d --incoming "unix:$D/mig-d.sock"
nap 0.2
out=$("$V" migrate --control "$D/c.ctl" "unix:$D/mig-d.sock" --precopy none --json) ||
	fail "migrate --precopy none: $out"
echo "$out" | tail -1 | grep -q '"rounds":0' || fail "--precopy none ran rounds: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "--precopy none not verified: $out"
status_is "$D/d.ctl" running || fail "--precopy none destination not running"
verified "$D/d.ctl" || fail "guest does not verify after --precopy none"

# 4. RAM-only pre-copy.
vm e --incoming "unix:$D/mig-e.sock"
nap 0.2
out=$("$V" migrate --control "$D/d.ctl" "unix:$D/mig-e.sock" --precopy ram --json) ||
	fail "migrate --precopy ram: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "--precopy ram not verified: $out"
verified "$D/e.ctl" || fail "guest does not verify after --precopy ram"
"$V" migrate --control "$D/e.ctl" "unix:$D/x.sock" --precopy some 2>"$D/bad.err" &&
	fail "--precopy some accepted"
grep -q 'precopy' "$D/bad.err" || fail "a bad --precopy was not named: $(cat "$D/bad.err")"
# 5. --stream-checksum crc32 writes format 1.0, which vfmig before 1.1 reads;
# the default is 1.3 with XXH3, its RAM in RAM_PAGES_LIVE records, none torn
# (save stops the guest first). Both restore and verify.
"$V" save --control "$D/e.ctl" "$D/v10.vfmig" --stream-checksum crc32 >/dev/null ||
	fail "save --stream-checksum crc32"
"$V" inspect "$D/v10.vfmig" | head -1 | grep -q "format 1.0,.*record checksum crc32" ||
	fail "not a 1.0 stream: $("$V" inspect "$D/v10.vfmig" | head -1)"
vm f --incoming "file:$D/v10.vfmig"
status_is "$D/f.ctl" running || fail "the 1.0 file did not restore"
verified "$D/f.ctl" || fail "the VM restored from a 1.0 file does not verify"
"$V" save --control "$D/f.ctl" "$D/x.vfmig" --stream-checksum md5 2>"$D/bad.err" &&
	fail "--stream-checksum md5 accepted"
grep -q "stream-checksum" "$D/bad.err" || fail "a bad --stream-checksum was not named: $(cat "$D/bad.err")"
"$V" save --control "$D/f.ctl" "$D/v13.vfmig" >/dev/null || fail "save"
"$V" inspect "$D/v13.vfmig" >"$D/v13.txt" || fail "inspect of the default stream"
head -1 "$D/v13.txt" | grep -q "format 1.3,.*record checksum xxh3" ||
	fail "the default is not 1.3/xxh3: $(head -1 "$D/v13.txt")"
grep -q "RAM_PAGES_LIVE" "$D/v13.txt" || fail "the default stream has no RAM_PAGES_LIVE"
grep "RAM_PAGES_LIVE" -A1 "$D/v13.txt" | grep -q ", [1-9][0-9]* torn" &&
	fail "a saved (stopped) guest's pages arrived torn"
vm g --incoming "file:$D/v13.vfmig"
status_is "$D/g.ctl" running || fail "the 1.3 file did not restore"
verified "$D/g.ctl" || fail "the VM restored from a 1.3 file does not verify"
echo "run-state: all checks passed"
