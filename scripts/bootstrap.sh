#!/usr/bin/env bash
# Installs what bsm needs on a fresh Debian machine, then the project's Python packages into
# .venv (editable). Idempotent: a second run only checks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v swaks >/dev/null 2>&1 || need_apt+=(swaks)        # a real SMTP client for the mail-door tests
[ -x /usr/bin/chromium ] || need_apt+=(chromium)             # the browser the web tests drive
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian starts a system cluster on port 5432; the stack runs its own, so stop that one.
  if printf '%s\n' "${need_apt[@]}" | grep -qx postgresql; then
    sudo_ service postgresql stop >/dev/null 2>&1 || true
  fi
fi

py=python3.11
command -v "$py" >/dev/null 2>&1 || py=python3
"$py" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "bsm needs Python 3.11 or newer" >&2; exit 1; }

stamp=.venv/.bsm-installed
inputs=$(cat pyproject.toml shared/pyproject.toml services/*/pyproject.toml devstack/pyproject.toml cli/pyproject.toml requirements-dev.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
  say "Python environment .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || { say "creating .venv"; "$py" -m venv .venv; }
say "installing the bsm packages into .venv (editable)"
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e shared -e services/alias -e services/policy -e services/delivery \
  -e services/metrics -e services/gateway -e devstack -e cli -r requirements-dev.txt
echo "$inputs" > "$stamp"
say "Python environment ready"
