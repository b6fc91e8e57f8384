#!/bin/sh
# The migration commands as a user runs them: real device and VMM processes,
# `vfmig migrate`, `vfmig save` and a restore with `vmm --incoming file:`,
# and a migration to a destination that is not there (the source must keep
# running). Usage: cli_migrate.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# frozen_destination N: a destination VMM for device N, listening on
# mig-N.sock, then stopped (SIGSTOP), so that a migration to it stalls in
# pre-copy with the stream under way. Its pid is in $fpid.
frozen_destination() {
	"$V" vmm --device "$D/$1.sock" --ram 16M --control "$D/$1.ctl" \
		--quiet --incoming "unix:$D/mig-$1.sock" 2>>"$D/procs.log" &
	fpid=$!
	pids="$pids $fpid"
	wait_for "$D/mig-$1.sock"
	kill -STOP $fpid
}

# in_precopy CTL: wait until the VM's outgoing migration is in pre-copy.
in_precopy() {
	for _ in $(seq $tries); do
		ctl "$1" '{"execute":"query-migrate"}' | grep -q '"status": *"active"' &&
			return 0
		sleep 0.02
	done
	return 1
}

for n in a b c d e f g; do
	start "$V" device regs --socket-path "$D/$n.sock" --quiet
done
for n in a b c d e f g; do wait_for "$D/$n.sock"; done
# The source starts with 4 MiB of RAM fill: the fill moves with RAM through
# the migration, the save and the restore, and each verifier checks it.
start "$V" vmm --device "$D/a.sock" --ram 16M --control "$D/a.ctl" --quiet \
	--fill 4M
start "$V" vmm --device "$D/b.sock" --ram 16M --control "$D/b.ctl" --quiet \
	--incoming "unix:$D/mig.sock"
wait_for "$D/a.ctl"; wait_for "$D/b.ctl"
nap 0.3

# 1. Nobody listens: the migration fails, names the phase, the VM runs on.
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/nobody.sock" --connect-timeout-ms 200 --json) &&
	fail "migrate to nowhere succeeded"
echo "$out" | grep -q '"error":"setup: channel' || fail "no setup error: $out"
ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q '"running"' ||
	fail "source not running after a failed migration"
"$V" migrate --control "$D/a.ctl" "unix:$D/nobody.sock" \
	--connect-timeout-ms 0 2>/dev/null && fail "--connect-timeout-ms 0 accepted"
ctl "$D/a.ctl" '{"execute":"migrate","arguments":{"uri":"unix:x","connect-timeout-ms":-1}}' |
	grep -q 'connect-timeout-ms' || fail "a negative connect-timeout-ms was not named"

# 1b. The destination process dies mid-migration: frozen first so the
# stream is under way (the source fills the socket), then killed. The source
# fails with the phase named and its guest still verifies.
frozen_destination d
dpid=$fpid
"$V" migrate --control "$D/a.ctl" "unix:$D/mig-d.sock" --json >"$D/killed.out" &
mpid=$!
in_precopy "$D/a.ctl" || fail "the migration to a frozen destination is not in pre-copy"
nap 0.5
kill -KILL $dpid
wait $mpid && fail "migration to a killed destination succeeded"
grep -q '"error":"\(pre-copy\|stop-copy\|completion\|setup\)' "$D/killed.out" ||
	fail "no phase in the error: $(cat "$D/killed.out")"
ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q '"running"' ||
	fail "source not running after the destination died"
nap 0.2
ctl "$D/a.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	fail "source guest does not verify after the failed migration"

# 1c. `stop` during pre-copy, then the destination dies: the source stays
# paused (what its user asked), devices stopped; `cont` runs it again.
frozen_destination e
epid=$fpid
"$V" migrate --control "$D/a.ctl" "unix:$D/mig-e.sock" --json >"$D/stopped.out" &
mpid=$!
in_precopy "$D/a.ctl" || fail "the migration to a frozen destination is not in pre-copy"
ctl "$D/a.ctl" '{"execute":"stop"}' | grep -q '"return"' ||
	fail "stop during pre-copy was refused"
ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q '"paused"' ||
	fail "source not paused after stop during pre-copy"
kill -KILL $epid
wait $mpid && fail "migration to a killed destination succeeded"
ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q '"paused"' ||
	fail "a failed migration resumed a VM its user had stopped"
ctl "$D/a.ctl" '{"execute":"query-devices"}' | grep -q '"migration_state": *"STOP"' ||
	fail "devices of the stopped VM not in STOP after the failed migration"
ctl "$D/a.ctl" '{"execute":"cont"}' | grep -q '"return"' ||
	fail "cont after the failed migration"
nap 0.2
ctl "$D/a.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	fail "source guest does not verify after stop + failed migration"

# 1d. `stop` during pre-copy on a migration that goes on: it switches over
# without waiting for convergence, completes, and the destination verifies.
start "$V" vmm --device "$D/f.sock" --ram 16M --control "$D/f.ctl" --quiet
frozen_destination g
gpid=$fpid
wait_for "$D/f.ctl"
nap 0.2
"$V" migrate --control "$D/f.ctl" "unix:$D/mig-g.sock" --max-rounds 100000 \
	--json >"$D/stop-go.out" &
mpid=$!
in_precopy "$D/f.ctl" || fail "the migration to a frozen destination is not in pre-copy"
ctl "$D/f.ctl" '{"execute":"stop"}' | grep -q '"return"' ||
	fail "stop during pre-copy was refused"
kill -CONT $gpid
wait $mpid || fail "migration after stop failed: $(cat "$D/stop-go.out")"
tail -1 "$D/stop-go.out" | grep -q '"verified":true' ||
	fail "not verified after stop: $(cat "$D/stop-go.out")"
ctl "$D/f.ctl" '{"execute":"query-status"}' | grep -q postmigrate ||
	fail "source not postmigrate after stop + migration"
nap 0.2
ctl "$D/g.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	fail "destination guest does not verify after stop + migration"

# A VM waiting for an incoming migration can be neither stopped nor
# continued: the migration owns its devices.
ctl "$D/b.ctl" '{"execute":"stop"}' | grep -q 'incoming migration' ||
	fail "stop during an incoming migration was not refused"

# 2. Live migration, verified by the destination.
out=$("$V" migrate --control "$D/a.ctl" "unix:$D/mig.sock" --json) ||
	fail "migrate: $out"
echo "$out" | tail -1 | grep -q '"verified":true' || fail "not verified: $out"
for k in total_ms downtime_ms rounds bytes throughput_mbps error; do
	echo "$out" | tail -1 | grep -q "\"$k\"" || fail "report lacks $k"
done
ctl "$D/a.ctl" '{"execute":"query-status"}' | grep -q postmigrate ||
	fail "source not postmigrate"
nap 0.2
ctl "$D/b.ctl" '{"execute":"query-guest"}' | grep -q '"verified": *true' ||
	fail "destination guest does not verify"

# 3. Save the destination's VM to a file, restore it into a third VMM.
"$V" save --control "$D/b.ctl" "$D/vm.vfmig" >/dev/null || fail "save"
"$V" inspect "$D/vm.vfmig" >/dev/null || fail "inspect of the saved file"
start "$V" vmm --device "$D/c.sock" --ram 16M --control "$D/c.ctl" --quiet \
	--incoming "file:$D/vm.vfmig"
wait_for "$D/c.ctl"
status_is "$D/c.ctl" running || fail "the restored VM does not run"
nap 0.2
g=$(ctl "$D/c.ctl" '{"execute":"query-guest"}')
echo "$g" | grep -q '"verified": *true' || fail "restored guest does not verify: $g"
echo "cli-migrate: all checks passed"
