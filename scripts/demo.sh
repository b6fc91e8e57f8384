#!/usr/bin/env bash
# Install what is missing, build vfmig, and run the main job: `vfmig demo`.
# Extra arguments go to `vfmig demo` (for example --json).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
if [ -d build ]; then
	meson setup --reconfigure build >/dev/null
else
	meson setup build >/dev/null
fi
ninja -C build >/dev/null
exec ./build/src/cli/vfmig demo "$@"
