#!/bin/sh
# The `vfmig` the shell tests run under the valgrind test setup:
# tests/integration/cli_lib.sh puts it in place of $V when run.sh set
# VFMIG_VALGRIND_WRAP, and VFMIG_VALGRIND_BIN names the real binary.
exec "$(dirname "$0")/vg.sh" "${VFMIG_VALGRIND_BIN:?}" "$@"
