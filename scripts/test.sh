#!/usr/bin/env bash
# Install what is missing, build, and run the whole vfmig test suite twice:
#   1. gcc, warnings as errors;
#   2. clang with AddressSanitizer + UndefinedBehaviorSanitizer, which also
#      builds the libFuzzer targets and runs each one briefly.
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh || { echo "dependency install failed"; exit 1; }

passed=0
failed=0

# run_suite NAME CC [meson options...]
run_suite() {
	local name=$1 compiler=$2 dir=build-test-$1 log
	shift 2
	echo "=== $name: configure and build ($compiler)"
	if [ -d "$dir" ]; then
		CC=$compiler meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		CC=$compiler meson setup "$dir" "$@" >/dev/null
	fi || { echo "$name: configure failed"; failed=$((failed + 1)); return; }
	if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
		cat "$dir.build.log"
		echo "$name: build failed"
		failed=$((failed + 1))
		return
	fi
	echo "=== $name: test"
	log=$(mktemp)
	meson test -C "$dir" --print-errorlogs --num-processes 2 2>&1 | tee "$log"
	local ok fail timeout unexpected
	ok=$(awk '/^Ok:/ {print $2}' "$log")
	fail=$(awk '/^Fail:/ {print $2}' "$log")
	timeout=$(awk '/^Timeout:/ {print $2}' "$log")
	unexpected=$(awk '/^Unexpected Pass:/ {print $3}' "$log")
	rm -f "$log"
	if [ -z "$ok" ]; then
		echo "$name: no test summary"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + ok))
	failed=$((failed + ${fail:-0} + ${timeout:-0} + ${unexpected:-0}))
}

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

run_suite gcc gcc
run_suite sanitize clang -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all -Dfuzz=enabled

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
