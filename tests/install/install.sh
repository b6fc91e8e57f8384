#!/bin/sh
# `meson install` into a DESTDIR, then check what an outside user gets:
# the public headers, the pkg-config files, shared libraries that export
# only vfmig_* symbols, the vfmig command and its man page, and a program built from the
# installed tree alone that runs a device and a client against each other.
# Usage: install.sh BUILD_DIR SOURCE_DIR CC
set -eu
B=$1 S=$2 CC=$3
T=$(mktemp -d /tmp/vfmig-install-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

meson install -C "$B" --destdir "$T" --no-rebuild --quiet ||
	fail "meson install --destdir"

for h in common.h device.h vmm.h vmm_mig.h; do
	[ -n "$(find "$T" -path "*/include/vfmig/$h")" ] || fail "no include/vfmig/$h"
done
[ -n "$(find "$T" -path '*/bin/vfmig' -type f)" ] || fail "no bin/vfmig"
# The man page: installed, and rendered without a single warning (groff
# with every warning on; man-db's own check too where it is installed).
man1=$(find "$T" -path '*/share/man/man1/vfmig.1' -type f | head -1)
[ -n "$man1" ] || fail "no share/man/man1/vfmig.1"
warn=$(groff -man -Tutf8 -ww -z "$man1" 2>&1) || fail "groff failed on vfmig.1: $warn"
[ -z "$warn" ] || fail "groff warns about vfmig.1: $warn"
if command -v man >/dev/null; then
	warn=$(MANWIDTH=80 man --warnings -l "$man1" 2>&1 >"$T/vfmig.1.txt") ||
		fail "man -l vfmig.1 failed: $warn"
	[ -z "$warn" ] || fail "man -l warns about vfmig.1: $warn"
	grep -q 'vfmig migrate' "$T/vfmig.1.txt" || fail "man -l rendered no 'vfmig migrate'"
fi
pcdir=$(dirname "$(find "$T" -name vfmig-device.pc | head -1)")
[ -f "$pcdir/vfmig-vmm.pc" ] || fail "no vfmig-vmm.pc beside vfmig-device.pc"

for name in vfmig-device vfmig-vmm; do
	lib=$(find "$T" -name "lib$name.so.*" -type f | head -1)
	[ -n "$lib" ] || fail "no lib$name.so.*"
	other=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
		grep -v '^vfmig_' || true)
	[ -z "$other" ] || fail "lib$name exports non-vfmig symbols: $other"
done

# Build against the installed tree only: pkg-config with a sysroot, and no
# include path into the source tree.
export PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_SYSROOT_DIR="$T"
flags=$(pkg-config --cflags --libs vfmig-device vfmig-vmm) || fail "pkg-config"
# shellcheck disable=SC2086
"$CC" -std=gnu11 -Wall -Wextra -Werror -o "$T/consumer" \
	"$S/tests/install/consumer.c" $flags -pthread || fail "building against the install"
libdir=$(echo "$flags" | tr ' ' '\n' | sed -n 's/^-L//p' | head -1)
LD_LIBRARY_PATH="$libdir" "$T/consumer" || fail "the installed libraries do not work"
echo "install: all checks passed"
