#!/bin/sh
# A device process dies under a running `vfmig vmm`: query-devices and
# query-status say its connection is lost (and why), and a migration, a
# save, or a migration into a destination whose device died fails naming
# the device, its socket and the cause, not a type or an errno number.
# Usage: cli_lost.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

# dev PID_VAR NAME: a regs device on NAME.sock, its pid in PID_VAR.
dev() {
	"$V" device regs --socket-path "$D/$2.sock" --quiet 2>>"$D/procs.log" &
	eval "$1=$!"
	pids="$pids $!"
	wait_for "$D/$2.sock"
}
# lost CTL ID: wait until query-devices says device ID is not connected.
lost() {
	for _ in $(seq 100); do
		q=$(ctl "$1" '{"execute":"query-devices"}')
		echo "$q" | python3 -c '
import json, sys
d = {x["id"]: x for x in json.load(sys.stdin)["return"]["devices"]}
sys.exit(2 if "connected" not in d[sys.argv[1]] else
         0 if d[sys.argv[1]]["connected"] is False else 1)' "$2"
		case $? in
		0) return 0 ;;
		2) fail "$1: query-devices does not say whether $2 is connected: $q" ;;
		esac
		sleep 0.05
	done
	fail "$1: $2 still shown connected after 5 s: $q"
}
# clean TEXT WHAT: no unregistered type, no errno number in TEXT.
clean() {
	echo "$1" | grep -q 'is not registered' && fail "$2 blames the type: $1"
	echo "$1" | grep -q 'errno [0-9]' && fail "$2 has an errno number: $1"
	return 0
}

dev apid a
dev bpid b
start "$V" vmm --device "$D/a.sock" --device "$D/b.sock" --ram 16M \
	--control "$D/src.ctl"
wait_for "$D/src.ctl"
nap 0.2
kill -KILL $bpid
lost "$D/src.ctl" dev1

# 1. query-devices: dev1 lost, with a blocker saying so; dev0 as it was.
q=$(ctl "$D/src.ctl" '{"execute":"query-devices"}')
echo "$q" | python3 -c '
import json, sys
d = {x["id"]: x for x in json.load(sys.stdin)["return"]["devices"]}
lost, ok = d["dev1"], d["dev0"]
assert lost["connected"] is False and lost["migratable"] is False, lost
assert lost["blocker"].startswith("connection to the device lost: "), lost
assert len(lost["blocker"]) > len("connection to the device lost: "), lost
assert lost["migration_state"] is None, lost
assert ok["connected"] is True and ok["migratable"] is True, ok
assert ok["blocker"] is None, ok
' || fail "query-devices after dev1 died: $q"
cause=$(echo "$q" | python3 -c '
import json, sys
d = {x["id"]: x for x in json.load(sys.stdin)["return"]["devices"]}
print(d["dev1"]["blocker"][len("connection to the device lost: "):])')
clean "$q" "query-devices"

# 2. query-status: not healthy, dev1's fault is the lost connection.
s=$(ctl "$D/src.ctl" '{"execute":"query-status"}')
echo "$s" | grep -q '"healthy": *false' || fail "a VM with a dead device is healthy: $s"
echo "$s" | grep -q '"id": *"dev1", *"fault": *"connection to the device lost' ||
	fail "query-status does not name dev1's lost connection: $s"

# 3. migrate and save name the device, its socket and the cause.
want="setup: device dev1 ($D/b.sock): connection lost: $cause"
out=$("$V" migrate --control "$D/src.ctl" "unix:$D/nobody.sock" \
	--connect-timeout-ms 200) && fail "a migration with a dead device succeeded"
echo "$out" | grep -qF "$want" || fail "migrate: '$out' does not say '$want'"
clean "$out" "migrate"
out=$("$V" save --control "$D/src.ctl" "$D/vm.vfmig") &&
	fail "a save with a dead device succeeded"
echo "$out" | grep -qF "$want" || fail "save: '$out' does not say '$want'"
[ -e "$D/vm.vfmig" ] && fail "a failed save left a file"
grep -qF "dev1 ($D/b.sock): connection lost: $cause" "$D/procs.log" ||
	fail "the VMM did not log the lost connection"

# 4. A destination whose device died: the source is told which one.
dev cpid c
dev dpid d
start "$V" vmm --device "$D/c.sock" --ram 16M --control "$D/dst.ctl" \
	--incoming "unix:$D/mig.sock"
start "$V" vmm --device "$D/d.sock" --ram 16M --control "$D/ok.ctl"
wait_for "$D/dst.ctl"
wait_for "$D/ok.ctl"
wait_for "$D/mig.sock"
kill -KILL $cpid
lost "$D/dst.ctl" dev0
nap 0.2
out=$("$V" migrate --control "$D/ok.ctl" "unix:$D/mig.sock") &&
	fail "a migration into a dead destination device succeeded"
echo "$out" | grep -qF "destination failed: incoming: device dev0 ($D/c.sock): connection lost: device closed the connection" ||
	fail "migrate into a dead destination device: $out"
clean "$out" "migrate into a dead destination device"
ctl "$D/ok.ctl" '{"execute":"query-status"}' | grep -q '"running"' ||
	fail "the source does not run after the destination refused"

clean "$(cat "$D/procs.log")" "the VMM log"
echo "cli-lost: all checks passed"
