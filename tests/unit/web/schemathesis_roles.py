"""schemathesis hooks for test_schemathesis.py, loaded by its CLI: the role boundary check.

The role making the requests and what each operation allows come from the environment (the
test works them out from the application's own dependencies and writes them to a file).
"""

import json
import os
from pathlib import Path

import schemathesis

_ROLE = os.environ["CTI_SCHEMATHESIS_ROLE"]
_ALLOWED: dict[str, list[str]] = json.loads(
    Path(os.environ["CTI_SCHEMATHESIS_ROLES"]).read_text(encoding="utf-8")
)


@schemathesis.check
def role_boundary(ctx, response, case):
    """A role never gets a 2xx answer from an operation that is not for it."""
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    allowed = _ALLOWED[operation]
    if _ROLE not in allowed and 200 <= response.status_code < 300:
        raise AssertionError(
            f"{_ROLE} got {response.status_code} from {operation}, which is for {', '.join(allowed)} only"
        )
