# Helpers for the shell tests that run `vfmig` as a user does. Source it
# with V (the vfmig binary) set; it makes the folder $D, and on exit stops
# every process started with `start` (or added to $pids), runs the
# function `on_exit` if the script defined one, and removes $D.
set -u
D=$(mktemp -d /tmp/vfmig-cli-XXXXXX)
# Under the valgrind test setup (tests/valgrind/run.sh) every vfmig the
# script runs is run by tests/valgrind/vfmig.sh under memcheck, and the
# waits for its sockets and states, and every `nap`, are $slow
# (VFMIG_TEST_SLOWDOWN) times as long.
slow=1
if [ -n "${VFMIG_VALGRIND_WRAP:-}" ]; then
	VFMIG_VALGRIND_BIN=$V V=$VFMIG_VALGRIND_WRAP slow=${VFMIG_TEST_SLOWDOWN:-10}
	export VFMIG_VALGRIND_BIN
fi
tries=$((200 * slow))
# nap SECONDS: sleep, $slow times as long; for a wait on what a vfmig
# process does ("let the guest run", "the migration is under way").
nap() { sleep "$(awk "BEGIN { print $1 * $slow }")"; }
# slow_ms N: N milliseconds, $slow times as many, for a bound passed to vfmig
# (a stall or connect timeout) that its own slowness could trip.
slow_ms() { echo $(($1 * slow)); }
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	if command -v on_exit >/dev/null; then on_exit; fi
	rm -rf "$D"
}
trap cleanup EXIT
# On failure everything started is killed hard: a stuck migration keeps
# its VMM from exiting on SIGTERM, and the test must end, not hang.
fail() {
	echo "FAIL: $*"
	for f in "$D"/*.log; do echo "== $f"; tail -5 "$f"; done
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	exit 1
}
start() { "$@" 2>>"$D/procs.log" & pids="$pids $!"; }
wait_for() { for _ in $(seq $tries); do [ -e "$1" ] && return 0; sleep 0.02; done; fail "no $1"; }
# A TCP port of 127.0.0.1 that nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_listen PORT: until something listens on 127.0.0.1:PORT (read from
# /proc, so that no connection is made to it).
wait_listen() {
	hex=$(printf '0100007F:%04X' "$1")
	for _ in $(seq $tries); do
		grep -q " $hex 00000000:0000 0A " /proc/net/tcp && return 0
		sleep 0.02
	done
	fail "nothing listens on 127.0.0.1:$1"
}
ctl() { # ctl SOCKET JSON -> the reply line to a command
	python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile()
f.readline()
s.sendall((sys.argv[2] + "\n").encode())
while True:
    line = json.loads(f.readline())
    if "event" not in line:
        print(json.dumps(line)); break
PY
}
# ls_dir DIR: the names in DIR, one line, sorted (sockets included).
ls_dir() { (cd "$1" && ls -A | sort | tr '\n' ' ' | sed 's/ $//'); }
# status_is CTL STATE: wait up to 2 s for the VM's run state to be STATE.
status_is() {
	for _ in $(seq $((tries / 2))); do
		ctl "$1" '{"execute":"query-status"}' | grep -q "\"status\": *\"$2\"" && return 0
		sleep 0.02
	done
	return 1
}
# verified CTL: after a moment of running, the guest verifier says ok.
verified() { nap 0.2; ctl "$1" '{"execute":"query-guest"}' | grep -q '"verified": *true'; }
# key OUTPUT NAME: member NAME of the JSON object on OUTPUT's last line
# (a `--json` report), as Python prints it (True, False, None, numbers).
key() { echo "$1" | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
# migrate_status CTL: the status member of query-migrate's reply.
migrate_status() {
	ctl "$1" '{"execute":"query-migrate"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["status"])'
}
# listening_again CTL: until the destination CTL, whose source was lost
# before COMMIT, waits for a source again (query-migrate status setup);
# fail if it started its guest instead (completed) or does not get there.
listening_again() {
	st=""
	for _ in $(seq $((200 * slow))); do
		st=$(migrate_status "$1")
		[ "$st" = setup ] && return 0
		[ "$st" = completed ] && fail "$1 started its guest without COMMIT"
		sleep 0.05
	done
	fail "$1: the migration is $st, not waiting again"
}
# hold_wait FILE PID LOG: until a run started with --test-hold POINT:FILE
# waits at its hold point (it creates FILE); fail, showing LOG, if PID
# (the `vfmig migrate` of that run) ends first or it takes too long.
hold_wait() {
	for _ in $(seq $((1000 * slow))); do
		[ -e "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.01
	done
	fail "the run never reached its hold point: $(cat "$3")"
}
# guest CTL EXPR: a Python expression over query-guest's reply (g).
guest() {
	ctl "$1" '{"execute":"query-guest"}' |
		python3 -c "import json,sys; g=json.load(sys.stdin)['return']; print(($2))"
}
# kvmvm NAME DEVOPTS VMMOPTS...: a dma device (options DEVOPTS) and a --kvm
# VMM (log NAME.log, control NAME.ctl, pid in pid_NAME); exits 77 with the
# reason where KVM is not usable.
kvmvm() {
	n=$1; dopt=$2; shift 2
	start "$V" device dma --socket-path "$D/$n-dma.sock" --quiet $dopt
	wait_for "$D/$n-dma.sock"
	"$V" vmm --kvm --device "$D/$n-dma.sock" --ram 16M --control "$D/$n.ctl" \
		"$@" 2>"$D/$n.log" &
	last=$!; pids="$pids $last"; eval "pid_$n=$last"
	for _ in $(seq $tries); do
		[ -e "$D/$n.ctl" ] && return 0
		if ! kill -0 "$last" 2>/dev/null; then
			if grep -q "KVM is not usable" "$D/$n.log"; then
				echo "SKIP: $(grep -m1 'KVM is not usable' "$D/$n.log")"
				exit 77
			fi
			fail "vmm $n exited: $(tail -3 "$D/$n.log")"
		fi
		sleep 0.05
	done
	fail "no $D/$n.ctl"
}
# need_kvm: exit 77 (skipped) with the reason unless /dev/kvm is there and
# usable by this user.
need_kvm() {
	if [ ! -e /dev/kvm ]; then
		echo "SKIP: no /dev/kvm"; exit 77
	fi
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "SKIP: /dev/kvm is not readable and writable for $(id -un)"; exit 77
	fi
}
# vm NAME [vmm options...]: a regs device NAME.sock and a 16 MiB VMM for it
# with control socket NAME.ctl (later options win: --ram 32M).
vm() {
	n=$1; shift
	start "$V" device regs --socket-path "$D/$n.sock" --quiet
	wait_for "$D/$n.sock"
	start "$V" vmm --device "$D/$n.sock" --ram 16M --control "$D/$n.ctl" --quiet "$@"
	wait_for "$D/$n.ctl"
}
# send_to SOCKET FILE: connect, send FILE, read until the peer closes.
send_to() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
try:
    s.sendall(open(sys.argv[2], "rb").read())
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
except (BrokenPipeError, ConnectionResetError):
    pass
PY
}
# vvm NAME [vmm options...]: an 8 MiB vram device logging to NAME-dev.log
# and a VMM for it with control socket NAME.ctl.
vvm() {
	n=$1; shift
	"$V" device vram --size 8M --socket-path "$D/$n.sock" 2>"$D/$n-dev.log" &
	pids="$pids $!"
	wait_for "$D/$n.sock"
	start "$V" vmm --device "$D/$n.sock" --ram 16M --control "$D/$n.ctl" --quiet "$@"
	wait_for "$D/$n.ctl"
}
