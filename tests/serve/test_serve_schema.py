"""Property-based API tests generated from the served OpenAPI schema (schemathesis): whatever the
generated request, the service answers without a server error, with a documented status, content
type and body shape."""

from __future__ import annotations

import pytest
from conftest import need
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

need("fastapi", "serve")
schemathesis = need("schemathesis", "dev")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served_schema(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzzed")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work).start()
    with served.client() as http:  # someone to find, so that verify/identify/get reach the gallery
        photo = lfw_people.strangers[0]
        http.post("/v1/subjects", data={"subject": "known"}, files={"images": (photo.name, photo.read_bytes())})
    yield schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    served.stop()


def test_the_api_answers_every_generated_request_as_documented(served_schema):
    from schemathesis import GenerationMode

    labels = []
    for result in served_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def answers_as_documented(case):
                case.call_and_validate(checks=CHECKS)

            try:
                answers_as_documented()
            except Unsatisfiable:  # nothing to make invalid: no body, and any string is a valid path part
                assert mode == GenerationMode.NEGATIVE and operation.method in ("get", "delete")
    assert len(labels) == 12, labels  # every /v1 route was fuzzed
