#!/usr/bin/env bash
# The demo: installs what is missing (scripts/setup.sh), then runs scripts/demo.py:
# real Asterisk sandbox + mosquitto, the daemon, five calls, the resulting tickets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${CTI_BRIDGE_VENV:-$PWD/.venv}/bin/python" scripts/demo.py
