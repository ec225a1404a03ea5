"""The REST API against its own OpenAPI document (docs/openapi.json), fuzzed by schemathesis on a
local stack of its own (the fuzzer rotates the tenant's webhook secret and creates predictions).

Every operation gets the document's examples, schemathesis' coverage cases (boundaries and
invalid values of every parameter and body field, missing auth, other methods) and a bounded
number of generated requests, positive and negative, with a fixed seed: the same requests on every
run. Two thirds of the generated creations name a registered service, so they get past
`unknown_service` into the callbacks, content types, metadata and inputs, and half of those create
predictions (`_shaped`). Each answer
must be no 5xx, a status the operation documents, a JSON body its schema accepts — the document
closed, so an undeclared field fails too (tests/support/openapi.py) — and carry the headers it
declares. A stateful run then follows the document's links (create → read, cancel, redeliver),
and a last pass reads back every prediction the runs created.

The tenant's webhooks may reach 127.0.0.1 only: no generated callback URL leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st

from chorus.model.registry import PACKAGED_REGISTRY, parse_registry
from tests.e2e.conftest import RunningStack, StartStack
from tests.support.openapi import closed, document

SEED = 2026
EXAMPLES_PER_OPERATION = 25  # generated requests per operation, besides examples and coverage cases
EXAMPLES_OF_CREATION = 100  # POST /predictions: the richest body, and what the reads then return
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 6
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)


def _generation(examples: int) -> dict[str, Any]:
    # Strings a JSON body can carry (no lone surrogates: refusing those is tested elsewhere).
    return {"max-examples": examples, "mode": "all", "codec": "utf-8", "database": "none"}


config = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": _generation(EXAMPLES_PER_OPERATION),
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "operations": [
            {"include-operation-id": "createPrediction", "generation": _generation(EXAMPLES_OF_CREATION)},
        ],
    }
)
schema = schemathesis.openapi.from_dict(closed(document()), config=config)
# What the default stack serves, for bodies that name a registered service (`_shaped`).
SERVICES = [service.name for service in parse_registry(json.loads(PACKAGED_REGISTRY.read_text())).services]
SHAPES = ("as generated", "naming a service", "creatable")
FITTED = ("contentType", "callback")  # refused unless they fit the service and the tenant
REQUESTS: Counter[str] = Counter()  # per operation
STATUSES: Counter[int] = Counter()
STATEFUL: Counter[str] = Counter()  # the requests of the stateful run, per operation
FAILED: Counter[str] = Counter()  # requests whose answer failed a check (shrinking replays count too)


@pytest.fixture(scope="module")
def fuzzed(start_stack: StartStack, request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    running = start_stack()
    admin = [sys.executable, "-m", "chorus_cli", "admin", "tenants", "update", "local", "--webhook-hosts", "127.0.0.1"]
    subprocess.run([*admin, "--local", str(running.ready_file)], check=True, capture_output=True, timeout=60)
    yield running
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(STATUSES.items()))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # the counts are the point of the run: always shown
        print(
            f"\nschema fuzz: {len(REQUESTS)} operations, {REQUESTS.total()} requests "
            f"({STATEFUL.total()} of them stateful), {FAILED.total()} failed a check; statuses {statuses}"
        )


def _count(operation: str, status: int) -> None:
    REQUESTS[operation] += 1
    STATUSES[status] += 1


@schema.hook
def before_generate_case(
    context: schemathesis.HookContext, cases: st.SearchStrategy[schemathesis.Case]
) -> st.SearchStrategy[schemathesis.Case]:
    if context.operation is None or context.operation.label != "POST /predictions":
        return cases
    return st.tuples(cases, st.sampled_from(SERVICES), st.sampled_from(SHAPES)).map(_shaped)


def _shaped(drawn: tuple[schemathesis.Case, str, str]) -> schemathesis.Case:
    """A third of the creations as generated, a third naming a registered service, a third also
    without the FITTED fields and the `Idempotency-Key` (generated keys repeat: 409s): those create
    predictions, whose metadata and input the reads must then return."""
    case, service, shape = drawn
    if not isinstance(case.body, dict) or shape == "as generated":
        return case
    case.body = {**case.body, "service": service}
    if shape == "creatable":
        case.body = {name: value for name, value in case.body.items() if name not in FITTED}
        for name in [name for name in case.headers or {} if name.lower() == "idempotency-key"]:
            del case.headers[name]
    return case


@schema.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case, fuzzed: RunningStack) -> None:
    response = case.call(base_url=f"{fuzzed.api_url}/v1", headers=fuzzed.auth_headers)
    _count(case.operation.label, response.status_code)
    try:
        case.validate_response(response, headers=fuzzed.auth_headers)
    except BaseExceptionGroup:  # schemathesis' FailureGroup: what the checks found, with a curl to replay it
        FAILED[case.operation.label] += 1
        raise


def test_linked_operations_answer_as_documented(fuzzed: RunningStack) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": f"{fuzzed.api_url}/v1", "headers": fuzzed.auth_headers}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            _count(case.operation.label, response.status_code)
            STATEFUL[case.operation.label] += 1

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, **kwargs)
            except BaseExceptionGroup:
                FAILED[case.operation.label] += 1
                raise

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


def test_every_prediction_the_fuzzers_made_still_reads_as_documented(fuzzed: RunningStack) -> None:
    # Given every prediction the runs above created (whatever they stored must read back)
    listing, reading = schema["/predictions"]["GET"], schema["/predictions/{prediction_id}"]["GET"]
    call = {"base_url": f"{fuzzed.api_url}/v1", "headers": fuzzed.auth_headers}
    ids: list[str] = []
    query: dict[str, Any] = {"limit": "100"}
    while True:
        # When the tenant lists them, page by page, and reads each one
        page = listing.Case(query=query).call_and_validate(**call)
        _count(listing.label, page.status_code)
        assert page.status_code == 200, page.text
        ids += [prediction["id"] for prediction in page.json()["predictions"]]
        if page.json()["nextCursor"] is None:
            break
        query = {"limit": "100", "cursor": page.json()["nextCursor"]}
    assert ids, "the fuzzers created no prediction"
    for prediction_id in ids:
        answer = reading.Case(path_parameters={"prediction_id": prediction_id}).call_and_validate(**call)
        _count(reading.label, answer.status_code)
        # Then every page and every prediction is a 200 its schema accepts
        assert answer.status_code == 200, answer.text
