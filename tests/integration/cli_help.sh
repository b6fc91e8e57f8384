#!/bin/sh
# --help and -h: every command prints its usage on stdout and exits 0; a
# usage error prints it on stderr and exits 2. The man page names every
# option the help texts and the README's command list name.
# Usage: cli_help.sh VFMIG MAN_PAGE README
V=$1 MAN=$2 README=$3
. "$(dirname "$0")/cli_lib.sh"

# help ARGS... : exit 0, usage on stdout (first line "usage: vfmig ..."),
# nothing on stderr. The text goes to $D/help.txt.
help() {
	"$V" "$@" >"$D/help.txt" 2>"$D/help.err"; rc=$?
	[ $rc -eq 0 ] || fail "vfmig $*: exit $rc"
	[ ! -s "$D/help.err" ] || fail "vfmig $*: stderr: $(cat "$D/help.err")"
	head -1 "$D/help.txt" | grep -q '^usage: vfmig' ||
		fail "vfmig $*: no usage on stdout: $(head -3 "$D/help.txt")"
}
# usage_error WANT ARGS... : exit 2, nothing on stdout, WANT on stderr.
usage_error() {
	want=$1; shift
	"$V" "$@" >"$D/err.out" 2>"$D/err.txt"; rc=$?
	[ $rc -eq 2 ] || fail "vfmig $*: exit $rc, wanted 2"
	[ ! -s "$D/err.out" ] || fail "vfmig $*: stdout: $(cat "$D/err.out")"
	grep -q -- "$want" "$D/err.txt" || fail "vfmig $*: stderr lacks '$want': $(cat "$D/err.txt")"
}

# Every option a help text shows must be in the man page (as \-\-opt).
in_man() {
	for o in $(grep -o -- '--[a-z][a-z-]*' "$1" | sort -u); do
		roff=$(echo "$o" | sed 's/-/\\\\-/g')
		grep -q -- "$roff" "$MAN" || fail "$2 shows $o; the man page does not"
	done
}

help --help
help -h
grep -q 'migrate' "$D/help.txt" || fail "vfmig --help lists no commands"
for cmd in demo device vmm migrate save inspect; do
	for h in --help -h; do
		help "$cmd" "$h"
		head -1 "$D/help.txt" | grep -q "^usage: vfmig $cmd" ||
			fail "vfmig $cmd $h: not its own usage: $(head -1 "$D/help.txt")"
	done
	in_man "$D/help.txt" "vfmig $cmd --help"
	grep -q "^\.SS \"vfmig $cmd" "$MAN" || fail "no man page section for $cmd"
done
# Help after other options, and a device's own options.
help vmm --device x --help
head -1 "$D/help.txt" | grep -q '^usage: vfmig vmm' || fail "vmm --device x --help"
for dev in regs vram dma; do
	help device "$dev" --help
	head -1 "$D/help.txt" | grep -q "^usage: vfmig device $dev" ||
		fail "device $dev --help: $(head -1 "$D/help.txt")"
	in_man "$D/help.txt" "vfmig device $dev --help"
done
help device regs -h
grep -q -- '--endless-stop-copy' "$D/help.txt" || fail "device regs -h lacks its options"
help device vram --help
grep -q -- '--size' "$D/help.txt" || fail "device vram --help lacks --size"

# Usage errors: stderr, exit 2.
usage_error 'usage: vfmig COMMAND'
usage_error "unknown command 'nosuch'" nosuch
usage_error 'usage: vfmig vmm' vmm --bogus
usage_error 'at least one --device' vmm
usage_error 'usage: vfmig migrate' migrate
usage_error "unexpected argument '--bogus'" migrate --control x y --bogus
usage_error 'usage: vfmig save' save --control x
usage_error 'usage: vfmig inspect' inspect
usage_error 'usage: vfmig demo' demo --bogus
usage_error 'usage: vfmig device' device
usage_error "unknown device 'nosuch'" device nosuch

# A VFMIG_TIMEOUT_SCALE that is not an integer from 1 to 1000 is refused
# before the command starts anything; a good one passes on to the command.
saved_scale=${VFMIG_TIMEOUT_SCALE-unset}
for bad in 0 1001 -2 +2 10x ' 3' abc ''; do
	VFMIG_TIMEOUT_SCALE=$bad; export VFMIG_TIMEOUT_SCALE
	usage_error "VFMIG_TIMEOUT_SCALE='$bad': not an integer from 1 to 1000" \
		vmm --device "$D/none.sock"
	usage_error "VFMIG_TIMEOUT_SCALE='$bad'" migrate --control x y
done
VFMIG_TIMEOUT_SCALE=5; export VFMIG_TIMEOUT_SCALE
usage_error 'usage: vfmig vmm' vmm --bogus
grep -q TIMEOUT_SCALE "$D/err.txt" && fail "a good VFMIG_TIMEOUT_SCALE refused: $(cat "$D/err.txt")"
if [ "$saved_scale" = unset ]; then
	unset VFMIG_TIMEOUT_SCALE
else
	VFMIG_TIMEOUT_SCALE=$saved_scale
fi
grep -q '^\.B VFMIG_TIMEOUT_SCALE' "$MAN" || fail "the man page has no VFMIG_TIMEOUT_SCALE"

# The README's command list names only options the man page describes,
# and the man page covers every command the README lists.
sed -n '/^vfmig demo/,/^URI:/p' "$README" >"$D/readme.txt"
[ -s "$D/readme.txt" ] || fail "no command list in the README"
in_man "$D/readme.txt" "the README's command list"
for cmd in $(sed -n 's/^vfmig \([a-z]*\).*/\1/p' "$D/readme.txt"); do
	grep -q "^\.SS \"vfmig $cmd" "$MAN" || fail "the README lists $cmd, the man page does not"
done
echo "cli-help: all checks passed"
