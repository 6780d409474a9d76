#!/usr/bin/env bash
# Installs the system tools the tests and the demo use, from Debian's packages, when they
# are missing: losetup/findmnt (util-linux), mkfs.ext4 (e2fsprogs), mkfs.xfs (xfsprogs),
# and curl and jq for the demo.
# Go itself is expected on PATH.
set -euo pipefail

need=()
command -v losetup >/dev/null || need+=(util-linux)
command -v findmnt >/dev/null || need+=(util-linux)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v go >/dev/null || { echo "Go is not on PATH; install Go 1.26 first" >&2; exit 1; }

if ((${#need[@]})); then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
