#!/bin/sh
# `vfmig save FILE` and `vfmig migrate file:FILE` put a stream under FILE
# only once it is whole: a save that fails leaves no file and no temporary
# behind, and an older FILE untouched; a save that succeeds leaves exactly
# FILE. Usage: cli_save.sh VFMIG [--enospc]
#   (default)  the save fails at the switchover: the device refuses STOP_COPY
#   --enospc   the save fails mid-stream: FILE is on a 1 MiB tmpfs (needs
#              root and mount; exits 77, a skip, where mounting is refused)
V=$1
mode=${2:-}
. "$(dirname "$0")/cli_lib.sh"

# vm NAME [device options]: a regs device and a VMM for it, control NAME.ctl
vm() {
	n=$1
	shift
	start "$V" device regs --socket-path "$D/$n.sock" --quiet "$@"
	wait_for "$D/$n.sock"
	start "$V" vmm --device "$D/$n.sock" --ram 16M --control "$D/$n.ctl" --quiet
	wait_for "$D/$n.ctl"
}
running() {
	ctl "$D/$1.ctl" '{"execute":"query-status"}' | grep -q '"running"' ||
		fail "$1: the VM does not run after a failed save"
}
# only DIR NAMES: DIR holds exactly NAMES (space-separated, sorted).
only() {
	[ "$(ls_dir "$1")" = "$2" ] || fail "$3: $1 holds '$(ls_dir "$1")', not '$2'"
}

if [ "$mode" = --enospc ]; then
	out=$D/small
	mkdir "$out"
	if ! mount -t tmpfs -o size=1M vfmig-test "$out" 2>"$D/mount.err"; then
		echo "SKIP: cannot mount a 1 MiB tmpfs here: $(cat "$D/mount.err")"
		exit 77
	fi
	on_exit() { umount "$out"; }
	vm full
	# The 16 MiB VM's stream does not fit once the guest has stamped more
	# than 1 MiB of pages (zero pages cost no space): wait for that rather
	# than for a fixed time, which a loaded machine may not honour.
	for _ in $(seq 500); do
		n=$(ctl "$D/full.ctl" '{"execute":"query-guest","arguments":{"verify":false}}' |
			sed -n 's/.*"ram_stamps": *\([0-9]*\).*/\1/p')
		[ "${n:-0}" -ge 1024 ] && break
		sleep 0.02
	done
	[ "${n:-0}" -ge 1024 ] || fail "the guest stamped only ${n:-0} pages"
	# Writing fails mid-stream with ENOSPC.
	res=$("$V" save --control "$D/full.ctl" "$out/vm.vfmig") &&
		fail "a save onto a full filesystem succeeded"
	echo "$res" | grep -q "No space left" || fail "ENOSPC not reported: $res"
	only "$out" "" "a save that ran out of space"
	running full
	printf 'an older save\n' >"$out/old.vfmig"
	cp "$out/old.vfmig" "$D/old.copy"
	"$V" save --control "$D/full.ctl" "$out/old.vfmig" >/dev/null &&
		fail "a save onto a full filesystem succeeded"
	cmp -s "$out/old.vfmig" "$D/old.copy" ||
		fail "a save that ran out of space changed the file it was to replace"
	only "$out" "old.vfmig" "a save over a file that ran out of space"
	running full
	echo "cli-save --enospc: all checks passed"
	exit 0
fi

out=$D/out
mkdir "$out"
vm bad --fail-transition STOP_COPY
vm ok
vm ok2
nap 0.2

# 1. The device refuses STOP_COPY: the save fails after the stream header,
# the device list and the guest's RAM were written. Nothing is left.
res=$("$V" save --control "$D/bad.ctl" "$out/vm.vfmig") &&
	fail "a save with a device refusing STOP_COPY succeeded"
echo "$res" | grep -q "refused STOP_COPY" || fail "the cause is not named: $res"
only "$out" "" "a failed save"
running bad

# 2. The same through `migrate file:`.
"$V" migrate --control "$D/bad.ctl" "file:$out/vm.vfmig" >/dev/null &&
	fail "a migration to a file with a device refusing STOP_COPY succeeded"
only "$out" "" "a failed migrate file:"
running bad

# 3. A failed save over an older file leaves the older file as it was.
printf 'an older save\n' >"$out/old.vfmig"
cp "$out/old.vfmig" "$D/old.copy"
"$V" save --control "$D/bad.ctl" "$out/old.vfmig" >/dev/null &&
	fail "a save with a device refusing STOP_COPY succeeded"
cmp -s "$out/old.vfmig" "$D/old.copy" ||
	fail "a failed save changed the file it was to replace"
only "$out" "old.vfmig" "a failed save over a file"
running bad

# 4. Successful saves, to a new name and over the older file: exactly the
# file, holding a whole stream.
"$V" save --control "$D/ok.ctl" "$out/vm.vfmig" >/dev/null || fail "save"
only "$out" "old.vfmig vm.vfmig" "a save to a new file"
"$V" inspect "$out/vm.vfmig" >/dev/null || fail "inspect of the saved file"
"$V" save --control "$D/ok2.ctl" "$out/old.vfmig" >/dev/null ||
	fail "save over a file"
only "$out" "old.vfmig vm.vfmig" "a save over a file"
"$V" inspect "$out/old.vfmig" >/dev/null || fail "inspect of the replaced file"
echo "cli-save: all checks passed"
