#!/usr/bin/env bash
# The full test suite against the real parts: prepare the machine (idempotent), then pytest.
# Extra arguments go to pytest, e.g.: scripts/test.sh tests/integration -x
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CTI_BRIDGE_VENV:-$REPO/.venv}

bash "$REPO/scripts/setup.sh"
cd "$REPO"
exec "$VENV/bin/python" -m pytest tests -q "$@"
