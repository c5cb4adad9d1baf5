"""Property-based fuzzing of /api/v1 (issue 9, item 6): schemathesis reads the OpenAPI document the portal serves,
generates valid and invalid requests for every operation, and sends them in-process (WSGI) with a valid admin
token. No answer may be a 5xx, and every error must be JSON of the shape {"error": {"code", "message", "field"?}}.

Bounded for CI: a fixed number of examples per operation, generated deterministically (the same cases on every
run, so a red build is reproducible); ORDERLOOM_FUZZ_EXAMPLES raises the number for a longer local hunt.
Runs on SQLite and PostgreSQL, each inside the rolled-back test transaction.
"""
import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from shared.config import PROJECT_ROOT
from tests.test_api import token_for  # noqa: F401  (fixture)

EXAMPLES = int(os.environ.get("ORDERLOOM_FUZZ_EXAMPLES", "20"))


SPEC = PROJECT_ROOT / "docs" / "openapi.json"
# The document the portal serves at /api/v1/openapi.json is this file as-is (test_the_fuzzed_document_is_the_served_one).
# It is loaded at import, not from the app, because pytest collects one test per operation before any app exists
# (schemathesis' fixture-based loader does not run on pytest 9).
schema = schemathesis.openapi.from_path(str(SPEC))
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES,
                                deterministic=True, database="none")


def test_the_fuzzed_document_is_the_served_one(portal):
    served = portal.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.get_json() == json.loads(SPEC.read_text(encoding="utf-8"))


@pytest.fixture
def bearer(token_for) -> str:  # noqa: F811
    return token_for("admin")


def error_is_json_with_the_error_shape(_ctx, response, case) -> None:
    """Every 4xx and 5xx is application/json with {"error": {"code": str, "message": str, "field"?: str}}."""
    if response.status_code < 400:
        return
    where = f"{case.method} {case.formatted_path} answered {response.status_code}"
    content_type = next((value for name, value in response.headers.items() if name.lower() == "content-type"), "")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.split(";")[0].strip() == "application/json", f"{where} as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"{where}: {body!r}"
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], f"{where}: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"{where}: {body!r}"
    assert isinstance(error.get("field", ""), str), f"{where}: {body!r}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_and_every_error_is_json(case, portal, stocked, bearer):
    response = case.call(app=portal, headers={"Authorization": f"Bearer {bearer}"})
    case.validate_response(response, checks=[not_a_server_error, error_is_json_with_the_error_shape, status_code_conformance,
                                                content_type_conformance, response_schema_conformance])
