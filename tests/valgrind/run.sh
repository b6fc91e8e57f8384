#!/bin/sh
# The valgrind test setup's wrapper (meson test --setup valgrind, see the
# top meson.build): runs one test with it and every vfmig process it
# starts under memcheck, then fails the test if any of their reports has
# an error or a definite leak.
#   C tests and `vfmig ...` tests: the test runs under vg.sh, which follows
#   the processes it execs.
#   Shell (and python) tests: sh itself runs as it is; cli_lib.sh replaces
#   $V by vfmig.sh, so every vfmig the script starts runs under vg.sh; the
#   `sh -c` tests put $VFMIG_VG in front of the binary; the fault matrix
#   (python3 tests/faults/matrix.py) runs cell.sh, which sources cli_lib.sh.
# VFMIG_VG_KEEP=1 keeps the reports (their folder is printed).
# VFMIG_TEST_SLOWDOWN (default 10) is how many times longer the tests wait
# for what the processes under memcheck do: cli_lib.sh and the C tests
# scale their waits, polls and timing bounds by it, never a check; it is
# also VFMIG_TIMEOUT_SCALE (unless that is set), which multiplies the
# product's own fixed waits for a peer (the VMM's 30 s for a device's
# reply, a migration channel's 30 s read timeout, the source's 30 s waits
# on the return path) that a starved memcheck process would miss.
# VFMIG_VG names vg.sh for the `sh -c` tests of meson.build: they run
# `${VFMIG_VG:-} "$0" ...`, the binary itself outside this setup.
here=$(cd "$(dirname "$0")" && pwd)
VFMIG_VG_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/vfmig-vg-XXXXXX") || exit 1
# Sticky and writable by all: cli-security runs peers as uid 65534, and
# memcheck refuses to start a process that cannot create its report.
chmod 1777 "$VFMIG_VG_LOGS" || exit 1
VFMIG_VALGRIND_WRAP=$here/vfmig.sh VFMIG_VG=$here/vg.sh
: "${VFMIG_TEST_SLOWDOWN:=10}"
: "${VFMIG_TIMEOUT_SCALE:=$VFMIG_TEST_SLOWDOWN}"
export VFMIG_VG_LOGS VFMIG_VALGRIND_WRAP VFMIG_VG VFMIG_TEST_SLOWDOWN \
	VFMIG_TIMEOUT_SCALE
case $(basename "$1") in
sh | bash | dash | python3*) "$@" ;;
*) "$here/vg.sh" "$@" ;;
esac
rc=$?
checked=0 unchecked=0 bad=0
for f in "$VFMIG_VG_LOGS"/*.log; do
	[ -e "$f" ] || continue
	if grep -q "ERROR SUMMARY: [1-9]" "$f"; then
		bad=$((bad + 1))
		echo "== valgrind: errors in $(basename "$f" .log):"
		cat "$f"
	elif grep -q "ERROR SUMMARY: 0 " "$f"; then
		checked=$((checked + 1))
	else
		unchecked=$((unchecked + 1)) # killed (SIGKILL) before its summary
	fi
done
echo "valgrind: $checked processes clean, $bad with errors," \
	"$unchecked killed before their summary"
if [ -n "${VFMIG_VG_KEEP:-}" ]; then
	echo "valgrind reports in $VFMIG_VG_LOGS"
else
	rm -rf "$VFMIG_VG_LOGS"
fi
[ "$bad" -eq 0 ] || exit 1
exit $rc
