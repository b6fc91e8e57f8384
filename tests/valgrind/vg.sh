#!/bin/sh
# vg.sh PROGRAM [ARGS...]: run PROGRAM under valgrind's memcheck as the
# valgrind test setup wants it (docs/reliability.md, "Valgrind"): every
# error and every definite leak counts; children it execs are followed
# (the C tests start `vfmig` processes, `vfmig demo` starts itself), shells
# and python are not. The report goes to VFMIG_VG_LOGS/PID.log, which
# run.sh reads when the test ends: a process killed on purpose never
# returns an exit status, its log still says what it did.
# A child that forks without exec (only tests do: fake peers) holds a copy
# of its parent's heap it never frees; --child-silent-after-fork keeps
# memcheck from reporting that copy as its leaks (such a child reports nothing
# at all). Its exec'd children are checked as ever.
here=$(cd "$(dirname "$0")" && pwd)
: "${VFMIG_VG_LOGS:?vg.sh runs under tests/valgrind/run.sh}"
exec valgrind --tool=memcheck --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--error-exitcode=99 --num-callers=30 --track-origins=yes \
	--trace-children=yes --child-silent-after-fork=yes \
	--trace-children-skip='*/sh,*/bash,*/dash,*/python3*,*/env,*/timeout' \
	--suppressions="$here/vfmig.supp" \
	--log-file="$VFMIG_VG_LOGS/%p.log" "$@"
