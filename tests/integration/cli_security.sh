#!/bin/sh
# Security defaults of every socket vfmig listens on (docs/reliability.md,
# "Security defaults"): device, control and unix: incoming sockets are 0600
# and a directory vfmig creates is 0700, under umask 022 and 000;
# --socket-mode is honoured exactly (also against umask 077); a directory
# every user may write (not sticky) is refused, a group-writable one warned
# about; --allow-uid closes a peer of another uid at accept, naming the uid,
# and serves the allowed ones, on device and control sockets alike. Peers of
# another uid are real processes run as uid 65534 (setpriv).
# Usage: cli_security.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"

[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null || {
	echo "SKIP: needs root and setpriv to run peers as another uid"; exit 77; }
PY=/usr/bin/python3 # a user other than root may not reach a pyenv shim
# A command, not a function: `start $AS_NOBODY ...` must give the pid of the
# process itself (setpriv execs it), so that the cleanup stops it.
AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
mode_is() { # mode_is PATH MODE
	m=$(stat -c %a "$1") || fail "no $1"
	[ "$m" = "$2" ] || fail "$1 has mode $m, wanted $2"
}
# start_log LOG CMD...: as start, stderr to LOG.
start_log() { l=$1; shift; "$@" 2>"$l" & pids="$pids $!"; }
# stop PID: SIGTERM and wait (the socket files go with the process).
# logged LOG TEXT: LOG has a line with TEXT (a fixed string), waited for as
# wait_for waits: a process may log a moment after what the test saw (a
# warning comes after the socket is in place; under memcheck that is long).
logged() {
	for _ in $(seq $tries); do grep -qF -- "$2" "$1" && return 0; sleep 0.02; done
	return 1
}
stop() { kill "$1"; wait "$1" 2>/dev/null; }

# 1. Defaults under two umasks: each socket in a directory that does not
# exist yet (two levels), created 0700; the files 0600.
for um in 022 000; do
	b=$D/u$um
	(umask $um; exec "$V" device regs --socket-path "$b/dev/d/r.sock" --quiet) \
		2>>"$D/procs.log" & dpid=$!
	pids="$pids $dpid"
	wait_for "$b/dev/d/r.sock"
	(umask $um; exec "$V" vmm --device "$b/dev/d/r.sock" --ram 16M --quiet \
		--control "$b/ctl/c.sock" --incoming "unix:$b/mig/m.sock") \
		2>>"$D/procs.log" & vpid=$!
	pids="$pids $vpid"
	wait_for "$b/ctl/c.sock"
	wait_for "$b/mig/m.sock"
	for d in "$b/dev" "$b/dev/d" "$b/ctl" "$b/mig"; do mode_is "$d" 700; done
	for s in "$b/dev/d/r.sock" "$b/ctl/c.sock" "$b/mig/m.sock"; do
		[ -S "$s" ] || fail "$s is not a socket"
		mode_is "$s" 600
	done
	# No temporary name is left beside them.
	[ "$(ls_dir "$b/mig")" = "m.sock" ] || fail "left in $b/mig: $(ls_dir "$b/mig")"
	stop "$vpid"; stop "$dpid"
done

# 2. --socket-mode exactly, whatever the umask (077 would take group bits).
b=$D/mode
(umask 077; exec "$V" device regs --socket-path "$b/r.sock" --socket-mode 0660 \
	--quiet) 2>>"$D/procs.log" & dpid=$!
pids="$pids $dpid"
wait_for "$b/r.sock"
mode_is "$b/r.sock" 660
(umask 077; exec "$V" vmm --device "$b/r.sock" --ram 16M --quiet \
	--socket-mode=0640 --control "$b/c.sock" --incoming "unix:$b/m.sock") \
	2>>"$D/procs.log" & vpid=$!
pids="$pids $vpid"
wait_for "$b/c.sock"
wait_for "$b/m.sock"
mode_is "$b/c.sock" 640
mode_is "$b/m.sock" 640
stop "$vpid"; stop "$dpid"
# Bad modes are usage errors that say what is wrong.
"$V" device regs --socket-path "$D/x.sock" --socket-mode 0066 2>"$D/err.txt" &&
	fail "--socket-mode 0066 accepted"
grep -q "owner needs read and write" "$D/err.txt" || fail "0066: $(cat "$D/err.txt")"
"$V" vmm --device "$D/x.sock" --socket-mode 1777 2>"$D/err.txt"
[ $? -eq 2 ] || fail "vmm --socket-mode 1777: not a usage error"
grep -q "at most 0777" "$D/err.txt" || fail "1777: $(cat "$D/err.txt")"
"$V" vmm --device "$D/x.sock" --allow-uid 'self,,0' 2>"$D/err.txt"
grep -q -- "--allow-uid: uid list: an empty item" "$D/err.txt" ||
	fail "self,,0: $(cat "$D/err.txt")"

# 3. Directories open to others: world-writable and not sticky is refused
# (device and control socket, with the reason); sticky (like /tmp) is fine;
# group-writable gives a warning and goes on.
mkdir -m 0777 "$D/open" && chmod 0777 "$D/open"
"$V" device regs --socket-path "$D/open/r.sock" 2>"$D/err.txt" &&
	fail "device listened in a world-writable directory"
grep -q "socket directory $D/open is writable by every user and not sticky" \
	"$D/err.txt" || fail "open dir, device: $(cat "$D/err.txt")"
[ ! -e "$D/open/r.sock" ] || fail "a socket was left in $D/open"
start "$V" device regs --socket-path "$D/r.sock" --quiet
wait_for "$D/r.sock"
"$V" vmm --device "$D/r.sock" --ram 16M --control "$D/open/c.sock" 2>"$D/err.txt" &&
	fail "vmm listened in a world-writable directory"
grep -q "control socket $D/open/c.sock: socket directory $D/open is writable" \
	"$D/err.txt" || fail "open dir, control: $(cat "$D/err.txt")"
mkdir "$D/sticky" && chmod 1777 "$D/sticky"
mkdir "$D/grp" && chmod 0770 "$D/grp"
start "$V" device regs --socket-path "$D/sticky/r.sock" --quiet
start_log "$D/grp.log" "$V" device regs --socket-path "$D/grp/r.sock"
wait_for "$D/sticky/r.sock"
wait_for "$D/grp/r.sock"
logged "$D/grp.log" "warning: socket directory $D/grp is writable by its group" ||
	fail "no warning for a group-writable directory: $(cat "$D/grp.log")"

# 4. Peer uids. The sockets are 0666 in a directory everyone may enter, so
# that only the uid check stands between uid 65534 and them.
chmod 0711 "$D"
mkdir -m 0755 "$D/pub"
mkdir "$D/nob" && chown 65534:65534 "$D/nob" # uid 65534's VMM sockets
# only root: self; anyone: no check; nobody: the name of uid 65534
for n in only anyone nobody; do
	case $n in
	only) acl="--allow-uid self" ;; anyone) acl="" ;; nobody) acl="--allow-uid nobody" ;;
	esac
	# shellcheck disable=SC2086
	start_log "$D/dev-$n.log" "$V" device regs --socket-path "$D/pub/$n.sock" \
		--socket-mode 0666 $acl
done
for n in only anyone nobody; do wait_for "$D/pub/$n.sock"; done
# A VMM of uid 65534 on the root-only device: its connection is closed at
# once, the VMM fails, the device says whom it refused, on which socket.
$AS_NOBODY timeout $((20 * slow)) "$V" vmm --device "$D/pub/only.sock" --ram 16M --control "$D/nob/x.ctl" \
	2>"$D/err.txt" && fail "uid 65534 was served by an --allow-uid self device"
logged "$D/dev-only.log" \
	"refused a client with uid 65534 on $D/pub/only.sock: not an allowed uid" ||
	fail "no refusal logged: $(cat "$D/dev-only.log")"
# The device serves on: root's VMM attaches, runs and verifies.
start "$V" vmm --device "$D/pub/only.sock" --ram 16M --control "$D/pub/root.ctl" --quiet
wait_for "$D/pub/root.ctl"
status_is "$D/pub/root.ctl" running || fail "root's VMM not running"
verified "$D/pub/root.ctl" || fail "root's VMM did not verify"
# Without the check, and with uid 65534 allowed by name: served.
for n in anyone nobody; do
	start $AS_NOBODY "$V" vmm --device "$D/pub/$n.sock" --ram 16M --quiet \
		--control "$D/nob/$n.ctl"
	wait_for "$D/nob/$n.ctl"
	status_is "$D/nob/$n.ctl" running || fail "uid 65534's VMM on $n not running"
	verified "$D/nob/$n.ctl" || fail "uid 65534's VMM on $n did not verify"
	! grep -q refused "$D/dev-$n.log" || fail "$n refused: $(cat "$D/dev-$n.log")"
done

# The control socket: uid 65534 is closed before the greeting when only
# root is allowed, and greeted and answered when there is no check.
# nctl SOCKET: as uid 65534, the greeting and a query-status reply, or
# "closed" when the server closes the connection first.
nctl() {
	$AS_NOBODY "$PY" - "$1" "$((5 * slow))" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.settimeout(int(sys.argv[2]))
f = s.makefile()
g = f.readline()
if not g:
    print("closed"); sys.exit(0)
s.sendall(b'{"execute":"query-status"}\n')
print(g.strip(), f.readline().strip())
PY
}
for n in c1 c2; do
	start "$V" device regs --socket-path "$D/$n.sock" --quiet
	wait_for "$D/$n.sock"
done
acl="--allow-uid=0"
start_log "$D/vmm-c1.log" "$V" vmm --device "$D/c1.sock" --ram 16M \
	--control "$D/pub/c1.ctl" --socket-mode 0666 $acl
start "$V" vmm --device "$D/c2.sock" --ram 16M --control "$D/pub/c2.ctl" \
	--socket-mode 0666 --quiet
wait_for "$D/pub/c1.ctl"
wait_for "$D/pub/c2.ctl"
[ "$(nctl "$D/pub/c1.ctl")" = closed ] || fail "uid 65534 reached c1's control socket"
logged "$D/vmm-c1.log" \
	"control socket $D/pub/c1.ctl: refused a client with uid 65534: not an allowed uid" ||
	fail "no control refusal logged: $(cat "$D/vmm-c1.log")"
status_is "$D/pub/c1.ctl" running || fail "c1 does not answer root after a refusal"
nctl "$D/pub/c2.ctl" | grep -q '"vfmig".*"status": *"running"' ||
	fail "uid 65534 not served without a check: $(nctl "$D/pub/c2.ctl")"
echo "ok"
