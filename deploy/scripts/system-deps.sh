#!/usr/bin/env bash
# Install the Debian packages rote needs that are missing, and nothing else.
#   system-deps.sh run    what `rote run` needs (bubblewrap for the sandbox; Chromium, which the executor's
#                         browser driver drives through the `playwright` pip package: Playwright's own
#                         browser download is never used)
#   system-deps.sh test   what the test suite needs as well (Prometheus + promtool, a JDK, Maven)
set -euo pipefail
what="${1:-run}"
export DEBIAN_FRONTEND=noninteractive

# command -> Debian package that provides it
declare -A NEEDS=([bwrap]=bubblewrap [python3.11]=python3.11 [make]=make [chromium]=chromium)
if [ "$what" = "test" ]; then
  NEEDS+=(
    [prometheus]=prometheus
    [promtool]=prometheus
    [java]=default-jre-headless   # Java 17 on bookworm, 21 on trixie; Kafka 4.x needs 17+
    [mvn]=maven
    [git]=git
  )
fi

missing=()
for cmd in "${!NEEDS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDS[$cmd]}")
done
if command -v python3.11 >/dev/null 2>&1 && ! python3.11 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3.11-venv)
fi

if ((${#missing[@]} == 0)); then
  echo "system-deps: all present for '$what'"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "system-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "system-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
