#!/usr/bin/env bash
# Installs, from Debian's packages, the commands listed in hack/deps.txt that are missing.
# Go itself is expected on PATH. `make deps` runs this; make test, demo, bench and chaos
# depend on it, so it runs before anything long starts.
set -euo pipefail

command -v go >/dev/null || { echo "Go is not on PATH; install Go 1.26 first" >&2; exit 1; }

need=() missing=()
while read -r tool pkg; do
  [[ -z $tool || $tool == \#* ]] && continue
  command -v "$tool" >/dev/null && continue
  missing+=("$tool ($pkg)")
  [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
done <"$(dirname "$0")/deps.txt"
((${#need[@]})) || exit 0

if [[ $(id -u) != 0 ]]; then
  echo "missing: ${missing[*]}; install those Debian packages as root (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]} for ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "could not install ${need[*]} with apt-get; missing: ${missing[*]}" >&2
  exit 1
fi
