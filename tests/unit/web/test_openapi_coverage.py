"""Every operation of the OpenAPI document is exercised, successfully, by some test of this folder.

It reads what the other tests' clients received (conftest.EndpointHits), so it runs after
them, and only when the whole folder runs: a new endpoint without a test fails here.
"""

import pytest


@pytest.mark.after_all_web_tests
def test_every_documented_operation_has_a_test_that_gets_a_success(site, endpoint_hits):
    documented = {
        (method.upper(), path) for path, methods in site.app.openapi()["paths"].items() for method in methods
    }
    assert len(documented) > 30
    untested = sorted(documented - endpoint_hits.hits)
    assert untested == [], f"operations no test gets a 2xx/3xx answer from: {untested}"
    assert endpoint_hits.hits <= documented
