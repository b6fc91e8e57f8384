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

# A short valgrind pass on the gcc build (no sanitizers): the pure unit
# tests (less the two slowest) and integration tests with real device and
# VMM processes, each process under memcheck (tests/valgrind/run.sh); a
# `vfmig device` process and the VMM library facing a hostile peer
# (device-io-unsolicited_reply, vmm-hostile-server). The full command is
# in docs/reliability.md ("Valgrind").
valgrind_tests=(protocol migfsm tscale progress-line vram-state stream-records
	stream-place stream-live stream-fields stream-golden stream-seal device-config device-io
	device-irq device-lifecycle device-region_iface device-region_strict
	device-ioeventfd
	vmm-unit engine-channel engine-pci-type engine-multichan
	engine-progress engine-converge migration cli-save-enospc
	device-io-unsolicited_reply vmm-hostile-server)
run_valgrind() {
	local log ok bad
	[ -d build-test-gcc ] || return
	echo "=== valgrind: ${#valgrind_tests[@]} tests"
	log=$(mktemp)
	meson test -C build-test-gcc --setup valgrind --print-errorlogs \
		--num-processes 2 "${valgrind_tests[@]}" 2>&1 | tee "$log"
	ok=$(awk '/^Ok:/ {print $2}' "$log")
	bad=$(awk '/^(Fail|Timeout):/ {s += $2} /^Unexpected Pass:/ {s += $3}
		END {print s + 0}' "$log")
	rm -f "$log"
	if [ -z "$ok" ]; then
		echo "valgrind: no test summary"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
}

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

run_suite gcc gcc
run_valgrind
run_suite sanitize clang -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all -Dfuzz=enabled

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
