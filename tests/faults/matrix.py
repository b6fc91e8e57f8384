#!/usr/bin/env python3
# The fault matrix (docs/reliability.md, "Fault matrix"): runs the cells
# of one phase (cell.sh, two at a time, VFMIG_FAULT_JOBS: most of a cell
# is waiting), keeps
# what they found in RESULTS/PHASE.tsv, and checks it against the table
# committed in the doc, so that the doc cannot go stale; or writes the
# table into the doc from the results of every phase.
#   matrix.py row VFMIG PHASE RESULTS DOC   run, record, compare (exit 1
#                                           on a failed cell or a stale doc)
#   matrix.py write RESULTS DOC             the table from RESULTS into DOC
#   matrix.py tcp VFMIG RESULTS DOC         the channel faults of two
#                                           phases over TCP: each cell must
#                                           end as the doc's (UNIX) cell
import os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

PHASES = ["setup", "pre-copy", "switchover", "stop-copy", "load", "resume"]
PHASE_NAMES = {"load": "destination load", "resume": "resume confirmation"}
FAULTS = [
    ("dst-vmm-killed", "destination VMM killed"),
    ("dst-device-killed", "destination device killed"),
    ("src-device-killed", "source device killed"),
    ("channel-cut", "channel cut"),
    ("channel-stalled", "channel stalled"),
    ("corrupt-byte", "a corrupted byte"),
    ("incompatible", "incompatible destination"),
    ("enospc", "no space (file target)"),
    ("peer-stops-reading", "peer stops reading"),
    ("ram-channel-cut", "RAM channel cut"),
    ("ram-channel-stalled", "RAM channel stalled"),
    ("ram-corrupt-byte", "RAM channel corrupted byte"),
]
# Cells that fail for a reason too big to fix with the matrix; each must
# still fail (a cell that passes again is taken off), and the doc says why.
KNOWN = {}
BEGIN = "<!-- fault-matrix: begin (tests/faults/matrix.py write) -->"
END = "<!-- fault-matrix: end -->"


def kind(outcome):
    """What a cell's outcome is, for comparing runs with the doc."""
    for k in ("pass", "n/a", "known failure", "fail"):
        if outcome.startswith(k):
            return k
    return "?"


# The TCP run: the faults that act on the connection, in the phases where
# data flows over it.
TCP_PHASES = ["pre-copy", "stop-copy"]
TCP_FAULTS = ["channel-cut", "channel-stalled", "corrupt-byte",
              "peer-stops-reading", "ram-channel-cut", "ram-channel-stalled",
              "ram-corrupt-byte"]


def run_cell(vfmig, phase, fault, transport="unix"):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FAULT_TRANSPORT=transport)
    p = subprocess.run(["sh", os.path.join(here, "cell.sh"), vfmig, phase,
                        fault], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       timeout=240 * int(os.environ.get("VFMIG_TEST_SLOWDOWN",
                                                        "1")),
                       env=env)
    line = p.stdout.rstrip("\n").splitlines()[-1:] or [""]
    parts = line[0].split("\t")
    if p.returncode != 0 or len(parts) != 5:
        parts = [phase, fault, "fail: cell.sh exited %d: %s" % (
            p.returncode, " ".join((p.stdout + p.stderr)[-300:].split())),
            "", ""]
    if kind(parts[2]) == "fail":
        sys.stderr.write("---- %s / %s\n%s\n" % (phase, fault, p.stderr))
    return parts


def doc_cells(doc):
    """(phase, fault) -> outcome, from the table in the doc."""
    cells = {}
    text = open(doc).read()
    if BEGIN not in text:
        return cells
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    names = {v: k for k, v in FAULTS}
    phases = {PHASE_NAMES.get(p, p): p for p in PHASES}
    for line in body.splitlines():
        f = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(f) == 5 and f[0] in phases and f[1] in names:
            cells[(phases[f[0]], names[f[1]])] = f[2]
    return cells


def row(vfmig, phase, results, doc):
    jobs = int(os.environ.get("VFMIG_FAULT_JOBS", "2"))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        got = list(ex.map(lambda f: run_cell(vfmig, phase, f[0]), FAULTS))
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, phase + ".tsv"), "w") as out:
        for parts in got:
            out.write("\t".join(parts) + "\n")
    committed = doc_cells(doc)
    bad = 0
    for ph, fault, outcome, err, exits in got:
        k = kind(outcome)
        known = KNOWN.get((ph, fault))
        print("%-10s %-20s %s | %s | %s" % (ph, fault, outcome, err, exits))
        if k == "fail" and not known:
            print("  FAILED cell")
            bad = 1
            continue
        if known and k != "fail":
            print("  a known failure passes now: take it off KNOWN")
            bad = 1
            continue
        want = kind(committed.get((ph, fault), "missing"))
        have = "known failure" if known else k
        if want != have:
            print("  docs/reliability.md says %r, this run: %s (rewrite "
                  "it: tests/faults/matrix.py write)" %
                  (committed.get((ph, fault), "nothing"), have))
            bad = 1
    return bad


def tcp(vfmig, results, doc):
    jobs = int(os.environ.get("VFMIG_FAULT_JOBS", "2"))
    cells = [(ph, f) for ph in TCP_PHASES for f in TCP_FAULTS]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        got = list(ex.map(lambda c: run_cell(vfmig, c[0], c[1], "tcp"),
                          cells))
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "tcp.tsv"), "w") as out:
        for parts in got:
            out.write("\t".join(parts) + "\n")
    committed = doc_cells(doc)
    bad = 0
    for ph, fault, outcome, err, exits in got:
        print("%-10s %-20s tcp: %s | %s | %s" % (ph, fault, outcome, err,
                                                  exits))
        want = kind(committed.get((ph, fault), "missing"))
        if kind(outcome) == "fail" or kind(outcome) != want:
            print("  FAILED cell: over UNIX it is %r" %
                  committed.get((ph, fault), "nothing"))
            bad = 1
    return bad


def esc(s):
    return s.replace("|", "\\|")


def write(results, doc):
    cells = {}
    for ph in PHASES:
        path = os.path.join(results, ph + ".tsv")
        if not os.path.exists(path):
            sys.exit("matrix.py: no results for phase %s in %s (run "
                     "meson test --suite faults first)" % (ph, results))
        for line in open(path):
            p = line.rstrip("\n").split("\t")
            cells[(p[0], p[1])] = p[2:]
    short = {"pass": "pass", "n/a": "n/a", "fail": "**known failure**"}
    lines = [BEGIN, "",
             "| phase | " + " | ".join(n for _, n in FAULTS) + " |",
             "|---" * (len(FAULTS) + 1) + "|"]
    for ph in PHASES:
        lines.append("| %s | " % PHASE_NAMES.get(ph, ph) + " | ".join(
            short.get(kind(cells[(ph, f)][0]), "?") for f, _ in FAULTS) + " |")
    lines += ["", "Every cell: what happened, the error the source reported "
              "and the exit codes.", "",
              "| phase | fault | outcome | error | exit codes |",
              "|---|---|---|---|---|"]
    for ph in PHASES:
        for f, name in FAULTS:
            outcome, err, exits = cells[(ph, f)]
            if kind(outcome) == "fail":
                outcome = "known failure: %s (seen: %s)" % (
                    KNOWN.get((ph, f), "UNEXPLAINED"), outcome[6:])
            lines.append("| %s | %s | %s | %s | %s |" % (
                PHASE_NAMES.get(ph, ph), name, esc(outcome),
                re.sub(r"/tmp/vfmig-cli-\w+/", "$D/", esc(err)),
                esc(exits)))
    lines += ["", END]
    text = open(doc).read()
    if BEGIN in text:
        head = text.split(BEGIN, 1)[0]
        tail = text.split(END, 1)[1]
    else:
        sys.exit("matrix.py: %s has no %s marker" % (doc, BEGIN))
    open(doc, "w").write(head + "\n".join(lines) + tail)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "row":
        sys.exit(row(*sys.argv[2:]))
    if len(sys.argv) == 5 and sys.argv[1] == "tcp":
        sys.exit(tcp(*sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        write(*sys.argv[2:])
        return
    sys.exit(__doc__ or "usage: matrix.py row VFMIG PHASE RESULTS DOC | "
             "write RESULTS DOC | tcp VFMIG RESULTS DOC")


if __name__ == "__main__":
    main()
