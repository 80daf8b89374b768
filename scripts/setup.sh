#!/usr/bin/env bash
# Prepare a Debian/Ubuntu machine to develop and test cti-bridge. Safe to run again: it only
# does what is missing.
#   1. Debian packages (python, mosquitto, debootstrap, sqlite3, sox, espeak-ng, English prompts,
#      chromium and CJK fonts for the browser tests)
#   2. a virtualenv with cti-bridge installed editable, with its test extras
#   3. the sandbox PBX chroot (asterisk/sandbox/pbx.sh build)
# Needs root (apt, debootstrap, chroot); re-runs itself with sudo when started as a user.
# env: CTI_BRIDGE_VENV (default <repo>/.venv), CTI_PBX_ROOT (see asterisk/sandbox/pbx.sh)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CTI_BRIDGE_VENV:-$REPO/.venv}

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nsetup.sh: error: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (apt-get, debootstrap and chroot need it)"
    echo "setup.sh: not root; re-running with sudo"
    exec sudo --preserve-env=CTI_BRIDGE_VENV,CTI_PBX_ROOT,MIRROR bash "$0" "$@"
fi

# (No "| grep -q" here: grep exits at the first match, and with pipefail the writer's SIGPIPE
# would turn a match into a failure.)
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
available() { [[ $(apt-cache policy "$1" 2>/dev/null) == *"Candidate: "[0-9]* ]]; }

# --- 1. Debian packages --------------------------------------------------------------------
# debian-archive-keyring lets debootstrap verify Debian sid (Ubuntu hosts lack it).
required=(python3 python3-venv python3-dev build-essential mosquitto debootstrap sqlite3 sox espeak-ng
          chromium fonts-noto-cjk
          debian-archive-keyring)
# Real speech and its transcripts for the transcription tests. Not every release has them;
# without them the tests use the copies inside the PBX chroot.
optional=(asterisk-core-sounds-en asterisk-core-sounds-en-wav)

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
optional_missing=()
for p in "${optional[@]}"; do installed "$p" || optional_missing+=("$p"); done

step "Debian packages"
if [ ${#missing[@]} -eq 0 ] && [ ${#optional_missing[@]} -eq 0 ]; then
    echo "all present: ${required[*]} ${optional[*]}"
else
    export DEBIAN_FRONTEND=noninteractive
    echo "apt-get update"
    apt-get update -q
    for p in "${optional_missing[@]}"; do
        if available "$p"; then missing+=("$p"); else echo "not in this release's apt sources: $p (tests use the chroot's copy)"; fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "apt-get install ${missing[*]}"
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi
# The mosquitto package may start a broker on port 1883; the tests start their own on a free
# loopback port, so it is left alone.

# --- 2. virtualenv ------------------------------------------------------------------------
step "virtualenv $VENV"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "python3 on PATH is $(python3 -V 2>&1); cti-bridge needs Python 3.11 or newer"
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    echo "python3 -m venv $VENV   ($(command -v python3), $(python3 -V 2>&1))"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
# pip runs again only when pyproject.toml changed since the last successful install.
stamp=$VENV/.cti-bridge-pyproject.sha256
want=$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "pip install -e '.[test]'"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$REPO[test]"
    echo "$want" >"$stamp"
else
    echo "up to date (pyproject.toml unchanged since the last install)"
fi

# --- 3. sandbox PBX -----------------------------------------------------------------------
step "sandbox PBX chroot"
bash "$REPO/asterisk/sandbox/pbx.sh" build

step "done"
echo "venv: $VENV    run the tests: scripts/test.sh (or $VENV/bin/python -m pytest tests)"
