#!/bin/sh
# Sealed device data (data channel version 2): the vram device makes the
# stream's DEVICE_DATA checksums itself and both VMMs move its data
# unread. Real device and VMM processes. Usage: cli_sealed.sh VFMIG
#   1. a live migration over UNIX: both device sessions sealed, the guest
#      verifies (every RAM fill byte and every VRAM fill);
#   2. a save to a file: sealed; `vfmig inspect` finds every record
#      checksum right (the device made the DEVICE_DATA ones); a restore
#      from the file (forwarded from the file's fd) verifies;
#   3. the same file with one byte of device data flipped: inspect refuses
#      it, and the restoring device refuses the record (checksum mismatch,
#      EBADMSG), so the restore fails and the VMM stays incoming;
#   4. a migration with --stream-checksum crc32: no seal either side (the
#      device could not make those checksums), and it verifies;
#   5. over TCP with RAM on two channels (device data on the main one):
#      sealed both ways, verified;
#   6. --max-bandwidth holds for device data that is spliced past the
#      channel's buffer: the pre-copy rate, mostly VRAM, stays within 10 %
#      above the limit.
V=$1
. "$(dirname "$0")/cli_lib.sh"

last_error() {
	ctl "$1" '{"execute":"query-migrate"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["report"]["error"])'
}
# sealed NAME WAY: NAME's device took a sealed WAY (saving, loading) session.
sealed() { grep -q "data channel attached for $2, sealed" "$D/$1-dev.log"; }
attached() { grep -q "data channel attached for $2" "$D/$1-dev.log"; }

# 1. Live, sealed both ways.
vvm s1 --fill 4M
vvm d1 --incoming "unix:$D/mig1.sock"
nap 0.4 # the guest fills VRAM pages meanwhile
out=$("$V" migrate --control "$D/s1.ctl" "unix:$D/mig1.sock" --json) ||
	fail "1: migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "1: not verified: $out"
sealed s1 saving || fail "1: the source device did not seal"
sealed d1 loading || fail "1: the destination device did not take sealed data"
verified "$D/d1.ctl" || fail "1: destination guest does not verify later"

# 2. Save to a file, check it, restore it.
vvm s2 --fill 4M
nap 0.4
"$V" save --control "$D/s2.ctl" "$D/vm.vfmig" >/dev/null || fail "2: save"
sealed s2 saving || fail "2: the saving device did not seal"
"$V" inspect "$D/vm.vfmig" >"$D/inspect.txt" || fail "2: inspect: $(tail -3 "$D/inspect.txt")"
grep -q "DEVICE_DATA.*checksum OK" "$D/inspect.txt" || fail "2: no DEVICE_DATA in the file"
vvm r2 --incoming "file:$D/vm.vfmig"
status_is "$D/r2.ctl" running || fail "2: the restored VM does not run"
sealed r2 loading || fail "2: the restoring device did not take sealed data"
verified "$D/r2.ctl" || fail "2: the restored guest does not verify"

# 3. One byte of device data flipped, 600 bytes into the first DEVICE_DATA
# record of more than 1000 bytes (header 8, device index 2).
at=$(awk '/DEVICE_DATA/ { for (i = 1; i <= NF; i++) if ($i == "length" && $(i + 1) > 1000) { sub("@", "", $1); print $1 + 610; exit } }' "$D/inspect.txt")
[ -n "$at" ] || fail "3: no DEVICE_DATA record of more than 1000 bytes"
cp "$D/vm.vfmig" "$D/bad.vfmig"
python3 - "$D/bad.vfmig" "$at" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x20]))
PY
"$V" inspect "$D/bad.vfmig" >"$D/inspect-bad.txt" && fail "3: inspect took the flipped byte"
grep -q "checksum mismatch" "$D/inspect-bad.txt" || fail "3: inspect: $(tail -2 "$D/inspect-bad.txt")"
vvm r3 --incoming "file:$D/bad.vfmig"
for _ in $(seq $((100 * slow))); do
	[ "$(migrate_status "$D/r3.ctl")" = failed ] && break
	sleep 0.05
done
[ "$(migrate_status "$D/r3.ctl")" = failed ] || fail "3: the restore did not fail"
# Found when the record arrives or, the device loading as it reads, at
# the next step that asks it: either way the device is named.
last_error "$D/r3.ctl" | grep -Eq "dev0 (refused its data|rejected the loaded state): malformed message" ||
	fail "3: error: $(last_error "$D/r3.ctl")"
grep -q "sealed frame checksum mismatch" "$D/r3-dev.log" ||
	fail "3: the device did not find the mismatch"
ctl "$D/r3.ctl" '{"execute":"query-status"}' | grep -q '"incoming"' ||
	fail "3: not incoming after the failed restore"

# 4. CRC-32 records: unsealed sessions on the channel.
vvm s4 --fill 4M
vvm d4 --incoming "unix:$D/mig4.sock"
nap 0.4
out=$("$V" migrate --control "$D/s4.ctl" "unix:$D/mig4.sock" --stream-checksum crc32 --json) ||
	fail "4: migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "4: not verified: $out"
attached s4 saving || fail "4: the source did not use the data channel"
sealed s4 saving && fail "4: the source sealed for a crc32 stream"
attached d4 loading || fail "4: the destination did not use the data channel"
sealed d4 loading && fail "4: the destination sealed for a crc32 stream"
# 5. TCP, two RAM channels.
port=$(free_port)
vvm s5 --fill 4M
vvm d5 --incoming "tcp:127.0.0.1:$port"
wait_listen "$port"
nap 0.4
out=$("$V" migrate --control "$D/s5.ctl" "tcp:127.0.0.1:$port" --channels 2 --json) ||
	fail "5: migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "5: not verified: $out"
sealed s5 saving || fail "5: the source device did not seal"
sealed d5 loading || fail "5: the destination device did not take sealed data"
verified "$D/d5.ctl" || fail "5: destination guest does not verify later"
# 6. The bandwidth limit, with little RAM beside the VRAM data.
vvm s6 --fill 1M
vvm d6 --incoming "unix:$D/mig6.sock"
nap 0.4 # the guest fills VRAM pages meanwhile
LIMIT=16777216
out=$("$V" migrate --control "$D/s6.ctl" "unix:$D/mig6.sock" --max-bandwidth 16M --json) ||
	fail "6: migrate: $out"
[ "$(key "$out" verified)" = True ] || fail "6: not verified: $out"
sealed s6 saving || fail "6: the source device did not seal"
rep=$(echo "$out" | tail -1)
b=$(key "$rep" precopy_bytes); ms=$(key "$rep" precopy_ms)
dev=$(echo "$rep" | python3 -c "import json,sys; print(json.load(sys.stdin)['bytes']['device'])")
python3 -c "import sys; sys.exit(0 if $dev > 1e6 and $ms > 0 else 1)" ||
	fail "6: too little device data to measure: $rep"
rate=$(python3 -c "print(int($b / ($ms / 1000)))")
echo "6: limit $LIMIT B/s: pre-copy $b bytes ($dev of device data) in $ms ms = $rate B/s"
python3 -c "import sys; sys.exit(0 if $rate <= $LIMIT * 1.10 else 1)" ||
	fail "6: the rate $rate is above the limit $LIMIT"
echo "cli-sealed: all checks passed"
