#!/usr/bin/env bash
# Run every libFuzzer target for a long time: scripts/fuzz-long.sh [HOURS] [JOBS]
#
# HOURS (default 1, fractions allowed) is the wall time of the whole run;
# JOBS (default 1) targets run at once, each under nice 19, so the run
# takes HOURS and each target gets HOURS * JOBS / (number of targets).
# Builds the fuzz build if it is missing (FUZZ_BUILD, default build-fuzz:
# clang, ASan + UBSan, -Dfuzz=enabled). Keeps a growing corpus per target
# outside the tree (FUZZ_WORK, default /var/tmp/vfmig-fuzz), seeded from the
# seeds meson gives each target's test; later runs start from it. A
# target that crashes is started again on its corpus until its time is up;
# each crash input is kept in FUZZ_WORK/crashes/TARGET/. Ends with a table
# of executions, coverage, corpus size, crashes and slow inputs per target;
# exits 1 if anything crashed.
#   FUZZ_TARGETS="server client"  only these targets
set -uo pipefail
cd "$(dirname "$0")/.."
hours=${1:-1}
jobs=${2:-1}
build=${FUZZ_BUILD:-build-fuzz}
work=${FUZZ_WORK:-/var/tmp/vfmig-fuzz}

if ! [[ $hours =~ ^[0-9]*\.?[0-9]+$ ]] || ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: $0 [HOURS] [JOBS]  (HOURS a positive number, JOBS >= 1)" >&2
	exit 2
fi
if [ ! -d "$build" ]; then
	CC=clang meson setup "$build" -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all \
		-Dfuzz=enabled >/dev/null || { echo "configure failed" >&2; exit 1; }
fi
mkdir -p "$work"
nice -n 19 ninja -C "$build" >"$work.build.log" 2>&1 ||
	{ cat "$work.build.log"; echo "build failed" >&2; exit 1; }

# target name and its comma-separated seeds, from meson's test list
mapfile -t lines < <(meson introspect --tests "$build" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if not any(s.split(":")[-1] == "fuzz" for s in t["suite"]):
        continue
    seeds = ""
    for a in t["cmd"][1:]:
        if a.startswith("-seed_inputs="):
            seeds = a[len("-seed_inputs="):]
    print(t["name"][len("fuzz-"):], seeds)
')
targets=()
for l in "${lines[@]}"; do
	name=${l%% *}
	if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $name "* ]]; then
		continue
	fi
	targets+=("$name")
	mkdir -p "$work/corpus/$name" "$work/crashes/$name" "$work/logs"
	seeds=${l#* }
	IFS=, read -ra files <<<"$seeds"
	for f in "${files[@]}"; do
		[ -n "$f" ] && cp -n "$f" "$work/corpus/$name/seed-$(basename "$f")"
	done
done
((${#targets[@]})) || { echo "no fuzz targets in $build" >&2; exit 1; }
per=$(python3 -c "print(max(60, int($hours * 3600 * $jobs / ${#targets[@]})))")
echo "fuzz-long: ${#targets[@]} targets, $per s each, $jobs at a time; work in $work"

# one target for its share of the time, restarted after a crash
run_target() {
	local name=$1 per=$2 build=$3 work=$4 start now left n=0
	local log=$work/logs/$name.log
	start=$(date +%s)
	: >"$log"
	while :; do
		now=$(date +%s)
		left=$((per - (now - start)))
		((left >= 10 && n < 50)) || break
		n=$((n + 1))
		nice -n 19 "$build/fuzz/fuzz-$name" "$work/corpus/$name" \
			-max_total_time="$left" -rss_limit_mb=2048 -timeout=30 \
			-print_final_stats=1 -artifact_prefix="$work/crashes/$name/" \
			>>"$log" 2>&1
	done
	echo "fuzz-long: $name done ($n runs)"
}
export -f run_target
printf '%s\n' "${targets[@]}" |
	xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {} "$per" "$build" "$work"

printf '\n%-16s %14s %8s %8s %8s %6s\n' target executions cov corpus crashes slow
status=0
for name in "${targets[@]}"; do
	log=$work/logs/$name.log
	execs=$(awk '/stat::number_of_executed_units:/ {s += $2} END {print s + 0}' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	corpus=$(find "$work/corpus/$name" -type f | wc -l)
	# crash-, leak-, timeout- and oom- inputs are findings; slow-unit-
	# ones (over 10 s once) are worth a look, on a busy machine at nice
	# 19 usually the scheduler
	crashes=$(find "$work/crashes/$name" -type f ! -name 'slow-unit-*' | wc -l)
	slow=$(find "$work/crashes/$name" -type f -name 'slow-unit-*' | wc -l)
	((crashes == 0)) || status=1
	printf '%-16s %14s %8s %8s %8s %6s\n' "fuzz-$name" "$execs" "${cov:--}" \
		"$corpus" "$crashes" "$slow"
done
echo "crash inputs: $work/crashes/TARGET/; logs: $work/logs/"
exit $status
