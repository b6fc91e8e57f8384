#!/bin/sh
# Watching a migration: query-migrate's progress keys on both sides, the
# live progress line of `vfmig migrate` on a pseudo-terminal (and its
# absence when the output is no terminal, or with --json), and the
# --report FILE.svg drawing, checked as XML for what it must show.
# Usage: cli_watch.sh VFMIG
V=$1
. "$(dirname "$0")/cli_lib.sh"
# Killed (a test timeout): still stop every process through the EXIT trap.
trap 'exit 143' TERM INT HUP

# on_pty OUT CMD...: run CMD with stdin, stdout and stderr on a new
# pseudo-terminal; what it wrote goes to OUT; its exit status is ours.
cat >"$D/on_pty.py" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
while True:
    try:
        b = os.read(fd, 65536)
    except OSError:
        break
    if not b:
        break
    out += b
open(sys.argv[1], "wb").write(out)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
PY
on_pty() { python3 "$D/on_pty.py" "$@"; }

# pair N [vmm options]: source VM sN (regs + 64 MiB vram) and a
# destination dN for it listening on unix:$D/mig-N.sock, its pid in dpidN.
pair() {
	n=$1; shift
	for side in s d; do
		start "$V" device regs --socket-path "$D/$side${n}r.sock" --quiet
		start "$V" device vram --size 64M --socket-path "$D/$side${n}v.sock" --quiet
	done
	for f in s${n}r s${n}v d${n}r d${n}v; do wait_for "$D/$f.sock"; done
	start "$V" vmm --device "$D/s${n}r.sock" --device "$D/s${n}v.sock" --ram 16M \
		--control "$D/s$n.ctl" --quiet "$@"
	start "$V" vmm --device "$D/d${n}r.sock" --device "$D/d${n}v.sock" --ram 16M \
		--control "$D/d$n.ctl" --quiet --incoming "unix:$D/mig-$n.sock"
	eval "dpid$n=\$!"
	wait_for "$D/s$n.ctl"; wait_for "$D/d$n.ctl"; wait_for "$D/mig-$n.sock"
}
# Several rounds: a limit the rounds hardly meet.
slow="--downtime-ms 1 --max-rounds 12"

pair 1; pair 2 --fill 8M; pair 3 --fill 8M
nap 0.3

# 0. Before any migration query-migrate has no progress keys; a waiting
# destination neither.
ctl "$D/s1.ctl" '{"execute":"query-migrate"}' >"$D/q0.json"
ctl "$D/d1.ctl" '{"execute":"query-migrate"}' >"$D/q0d.json"
python3 - "$D/q0.json" "$D/q0d.json" <<'PY' || fail "progress keys before a migration"
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))["return"]
    assert "total-time" not in r and "ram" not in r, r
PY

# 1. A bad --report path fails before the migration starts; so does a name
# that is not .svg.
"$V" migrate --control "$D/s1.ctl" "unix:$D/mig-1.sock" \
	--report "$D/no/such/dir/r.svg" >"$D/bad.out" 2>"$D/bad.err" &&
	fail "migrate with an unwritable --report succeeded"
grep -q -- "--report $D/no/such/dir/r.svg: cannot write .*No such file or directory" "$D/bad.err" ||
	fail "no clear error for a bad --report path: $(cat "$D/bad.err")"
"$V" migrate --control "$D/s1.ctl" "unix:$D/mig-1.sock" --report "$D/r.png" \
	2>"$D/bad.err" && fail "--report r.png accepted"
grep -q 'must end in .svg' "$D/bad.err" || fail "no error for --report r.png: $(cat "$D/bad.err")"
ctl "$D/s1.ctl" '{"execute":"query-migrate"}' | grep -q '"status": *"none"' ||
	fail "a migration started despite the bad --report"
[ "$(ls_dir "$D" | tr ' ' '\n' | grep -c 'r\.\(svg\|png\)')" = 0 ] ||
	fail "a bad --report left files: $(ls_dir "$D")"

# 2. On a terminal: the progress line, redrawn in place, then the report;
# the drawing of the timeline. The destination is frozen for a second at
# the start, so that the line is drawn several times. (What the line shows
# for each query-migrate reply is checked in tests/unit/test_progress_line.c.)
kill -STOP "$dpid1"
(sleep 1; kill -CONT "$dpid1") &
# shellcheck disable=SC2086
on_pty "$D/tty.out" "$V" migrate --control "$D/s1.ctl" "unix:$D/mig-1.sock" \
	$slow --report "$D/timeline.svg" || fail "migration on a pty failed: $(cat "$D/tty.out")"
python3 - "$D/tty.out" <<'PY' || fail "no live progress line on the terminal: $(cat -v "$D/tty.out")"
import re, sys
out = open(sys.argv[1], "rb").read().decode()
# Redrawn in place: carriage return, the line, erase to its end. How
# many times depends on the scheduler; the first poll always draws.
lines = re.findall(r"\r([^\r\n]*?)\x1b\[K", out)
drawn = [l for l in lines if l]
assert drawn, out
line = (r"(setup|active|switchover|completed): round \d+, RAM [^,]*, devices [^,]*, "
        r"\d+ Mbit/s, dirty \d+ pages/s(, expected downtime \d+ ms)?$")
assert all(re.match(line, l) for l in drawn), drawn
# The line is erased before the report, which is plain text.
assert "\r\x1b[Kmigration completed: verified" in out, out[-300:]
assert "\x1b[K" not in out.split("migration completed", 1)[1]
PY
ctl "$D/s1.ctl" '{"execute":"query-migrate"}' >"$D/q1.json"
ctl "$D/d1.ctl" '{"execute":"query-migrate"}' >"$D/q1d.json"
[ "$(ls_dir "$D" | tr ' ' '\n' | grep -c 'timeline\.svg')" = 1 ] ||
	fail "the report left a temporary file: $(ls_dir "$D")"

# query-migrate, source and destination, after the migration.
python3 - "$D/q1.json" "$D/q1d.json" <<'PY' || fail "query-migrate progress keys"
import json, sys
src = json.load(open(sys.argv[1]))["return"]
dst = json.load(open(sys.argv[2]))["return"]
for r in (src, dst):
    assert r["status"] == "completed", r["status"]
    for k in ("total-time", "setup-time", "ram", "devices", "vfio", "switchover-time"):
        assert k in r, (k, r.keys())
    assert r["ram"]["total"] == 16 << 20 and r["ram"]["page-size"] == 4096, r["ram"]
    assert r["ram"]["transferred"] == r["ram_bytes"] > 0, r["ram"]
    assert r["ram"]["precopy-bytes"] + r["ram"]["downtime-bytes"] == r["ram"]["transferred"]
    assert [d["id"] for d in r["devices"]] == ["dev0", "dev1"], r["devices"]
    assert sum(d["transferred"] for d in r["devices"]) == r["device_bytes"] == r["vfio"]["transferred"]
    for d in r["devices"]:
        assert d["precopy-bytes"] + d["downtime-bytes"] == d["transferred"], d
    assert 0 <= r["setup-time"] <= r["switchover-time"] <= r["total-time"], r
    assert "expected-downtime" not in r, "expected-downtime after the end"
# The regs device has no pre-copy: all of its data moves in the downtime.
assert src["devices"][0]["downtime-bytes"] == src["devices"][0]["transferred"] > 0
assert src["devices"][1]["precopy-bytes"] > 0  # vram pre-copies
assert src["downtime"] == round(src["report"]["downtime_ms"]), src
assert "downtime" not in dst  # only the source measures it
# Source only: remaining (nothing, once completed) and the dirty rate.
assert src["ram"]["remaining"] == 0 and "remaining" not in dst["ram"]
assert all(d["remaining"] == 0 for d in src["devices"])
assert src["ram"]["dirty-sync-count"] == src["rounds"] >= 2, src
# The rate of the last dirty sync (0 when the guest wrote nothing between
# the last two): checked against the timeline below.
assert src["ram"]["dirty-pages-rate"] >= 0, src["ram"]
assert src["ram"]["dirty-bytes-rate"] == src["ram"]["dirty-pages-rate"] * 4096 or \
    abs(src["ram"]["dirty-bytes-rate"] - src["ram"]["dirty-pages-rate"] * 4096) <= 4096
# The timeline: one entry per round, then the stop-copy; its bytes add up
# to the report's.
rep = src["report"]
tl = rep["timeline"]
assert rep["timeline_devices"] == ["dev0", "dev1"] and rep["timeline_rounds_dropped"] == 0
assert [e["round"] for e in tl] == list(range(1, rep["rounds"] + 1)) + [0], tl
assert [e["phase"] for e in tl] == ["precopy"] * rep["rounds"] + ["stop-copy"]
assert sum(e["ram_bytes"] for e in tl) == rep["bytes"]["ram"], tl
assert sum(sum(e["device_bytes"]) for e in tl) == rep["bytes"]["device"], tl
assert all(e["expected_downtime_ms"] is not None for e in tl[:-1]), tl
assert tl[-1]["start_ms"] == rep["switchover_ms"], (tl[-1], rep["switchover_ms"])
assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(tl, tl[1:])), tl
assert max(e["dirty_pages_rate"] for e in tl[:-1]) > 0, tl
assert abs(src["ram"]["dirty-pages-rate"] - tl[-2]["dirty_pages_rate"]) <= 1, \
    (src["ram"], tl[-2])
PY

# The drawing: well-formed, a bar group per timeline entry with a bar per
# series, a dirty-rate point per round, switchover and downtime marked
# with their figures.
python3 - "$D/timeline.svg" "$D/q1.json" <<'PY' || fail "the timeline drawing"
import json, sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
rep = json.load(open(sys.argv[2]))["return"]["report"]
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
def cls(c):
    return [e for e in root.iter() if c in (e.get("class") or "").split()]
def text(e):
    return "".join(e.itertext())
groups = cls("round")
tl = rep["timeline"]
assert len(groups) == len(tl) == rep["rounds"] + 1, (len(groups), len(tl))
series = ["RAM", "dev0", "dev1"]
for g, e in zip(groups, tl):
    assert g.get("data-phase") == e["phase"] and int(g.get("data-round")) == e["round"]
    bars = [b for b in g if (b.get("class") or "") == "bar"]
    assert [b.get("data-series") for b in bars] == series, bars
    want = [e["ram_bytes"]] + e["device_bytes"]
    assert [int(b.get("data-bytes")) for b in bars] == want, (want, bars)
    assert all(float(b.get("height")) >= 0 for b in bars)
labels = [text(l) for l in cls("round-label")]
assert labels == ["round %d" % i for i in range(1, rep["rounds"] + 1)] + ["stop-copy"], labels
assert all(text(l).endswith(("B", "KiB", "MiB", "GiB")) for l in cls("bar-label"))
legend = [l.get("data-series") for l in cls("legend")]
assert legend == series + ["dirty-rate"], legend
points = cls("dirty-rate-point")
assert [int(p.get("data-round")) for p in points] == list(range(1, rep["rounds"] + 1)), points
assert len(cls("dirty-rate")) == 1
sw = cls("switchover-label")
assert len(sw) == 1 and text(sw[0]) == "switchover at %.1f ms" % rep["switchover_ms"], text(sw[0])
dt = cls("downtime-label")
assert len(dt) == 1 and text(dt[0]) == "downtime %.1f ms" % rep["downtime_ms"], text(dt[0])
assert len(cls("downtime")) == 1
title = text(cls("title")[0]); summary = text(cls("summary")[0])
assert title == "vfmig migration: completed", title
assert ("%d rounds" % rep["rounds"]) in summary and ("downtime %.1f ms" % rep["downtime_ms"]) in summary, summary
PY

# 3. A failed migration still draws what it got to, and says it failed.
"$V" migrate --control "$D/s2.ctl" "unix:$D/nobody.sock" --connect-timeout-ms 100 \
	--report "$D/failed.svg" >/dev/null 2>&1 && fail "migration to nowhere succeeded"
python3 - "$D/failed.svg" <<'PY' || fail "the drawing of a failed migration"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
def cls(c):
    return [e for e in root.iter() if c in (e.get("class") or "").split()]
title = "".join(cls("title")[0].itertext())
assert title.startswith("vfmig migration: failed: setup: channel"), title
assert not cls("round") and not cls("downtime") and len(cls("empty")) == 1
PY

# 4. Not a terminal: no progress line at all, on either stream.
# shellcheck disable=SC2086
"$V" migrate --control "$D/s2.ctl" "unix:$D/mig-2.sock" $slow \
	>"$D/plain.out" 2>"$D/plain.err" || fail "migration without a terminal failed"
grep -q 'migration completed' "$D/plain.out" || fail "no report: $(cat "$D/plain.out")"
if grep -q "$(printf '\r')" "$D/plain.out" "$D/plain.err" ||
	grep -q 'round [0-9]' "$D/plain.out" "$D/plain.err"; then
	fail "a progress line without a terminal: $(cat -v "$D/plain.err" "$D/plain.out")"
fi

# 5. --json on a terminal: no progress line, the JSON report alone.
# shellcheck disable=SC2086
on_pty "$D/json.out" "$V" migrate --control "$D/s3.ctl" "unix:$D/mig-3.sock" \
	$slow --json || fail "migration with --json failed: $(cat "$D/json.out")"
python3 - "$D/json.out" <<'PY' || fail "--json on a terminal: $(cat -v "$D/json.out")"
import json, sys
out = open(sys.argv[1], "rb").read().decode()
assert "\x1b[K" not in out and "round" not in out.split("{", 1)[0], out
lines = out.replace("\r\n", "\n").strip().split("\n")
assert len(lines) == 1, lines
assert json.loads(lines[0])["verified"] is True
PY

echo "cli-watch: all checks passed"
