#!/usr/bin/env bash
# Install the Debian 12 packages vfmig needs to build, test and fuzz.
# Skips apt when everything is already there, so repeated runs are fast.
set -euo pipefail
pkgs=(gcc clang libclang-rt-14-dev meson ninja-build pkg-config
      libjson-c-dev libcmocka-dev zlib1g-dev libxxhash-dev groff-base
      valgrind)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	sudo_cmd=()
	[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo_cmd[@]}" apt-get update -qq
	"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
