"""Ensemble declarations are validated when the registry is parsed, naming the culprit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chorus.core.errors import RegistryInvalid
from chorus.model.registry import PACKAGED_REGISTRY, parse_registry
from tests.support.registry_documents import ensemble, model


def step(name: str, service: str = "m", mapping: Any = "{{ input }}") -> dict[str, Any]:
    return {"name": name, "service": service, "input": mapping}


def test_packaged_registry_is_valid() -> None:
    # Given the registry shipped in the layer, When it is parsed, Then it validates
    registry = parse_registry(json.loads(PACKAGED_REGISTRY.read_text()))
    assert {e.name for e in registry.ensembles()} >= {"digits-ensemble", "digits-committee"}


def test_unknown_service_is_rejected_naming_step_and_service() -> None:
    # Given a step on a service nobody declared
    document = {"services": [model("m"), ensemble("e", [step("a", service="ghost")])]}
    # When the registry is parsed, Then the error names the ensemble, the step and the service
    with pytest.raises(RegistryInvalid, match=r"ensemble 'e' step 'a'.*unknown service 'ghost'"):
        parse_registry(document)


def test_step_referring_to_itself_is_rejected() -> None:
    # Given a step whose input reads its own output
    document = {"services": [model("m"), ensemble("e", [step("a", mapping={"x": "{{ a.output.x }}"})])]}
    # When the registry is parsed, Then the self-reference is named
    with pytest.raises(RegistryInvalid, match=r"step 'a' input: refers to itself"):
        parse_registry(document)


def test_forward_reference_is_rejected_as_not_preceding() -> None:
    # Given step a reading step b, which is declared after it (a cycle a -> b -> a is impossible to order)
    steps = [step("a", mapping={"x": "{{ b.output.x }}"}), step("b", mapping={"y": "{{ a.output.y }}"})]
    document = {"services": [model("m"), ensemble("e", steps)]}
    # When the registry is parsed, Then the error names the culprit step and the reference
    with pytest.raises(RegistryInvalid, match=r"step 'a'.*refers to 'b', which is not a preceding step"):
        parse_registry(document)


def test_reference_to_an_undeclared_step_is_rejected() -> None:
    # Given a reference to a name that is no step at all
    document = {"services": [model("m"), ensemble("e", [step("a", mapping="{{ nope.output.x }}")])]}
    # When the registry is parsed, Then the unknown root is named
    with pytest.raises(RegistryInvalid, match=r"refers to 'nope'"):
        parse_registry(document)


def test_output_referring_to_an_undeclared_step_is_rejected() -> None:
    # Given an ensemble output reading a step that does not exist
    document = {"services": [model("m"), ensemble("e", [step("a")], output="{{ b }}")]}
    # When the registry is parsed, Then the output is named as the culprit
    with pytest.raises(RegistryInvalid, match=r"ensemble 'e' output.*refers to 'b'"):
        parse_registry(document)


def test_cycle_through_nested_ensembles_is_rejected() -> None:
    # Given ensemble x nesting y, and y nesting x
    document = {
        "services": [
            model("m"),
            ensemble("x", [step("a", service="y")]),
            ensemble("y", [step("a", service="x")]),
        ]
    }
    # When the registry is parsed, Then the cycle is spelled out
    with pytest.raises(RegistryInvalid, match=r"ensembles form a cycle: x -> y -> x"):
        parse_registry(document)


def test_ensemble_nesting_itself_is_rejected() -> None:
    # Given an ensemble with a step on itself
    document = {"services": [model("m"), ensemble("x", [step("a", service="x")])]}
    # When the registry is parsed, Then the one-element cycle is named
    with pytest.raises(RegistryInvalid, match=r"cycle: x -> x"):
        parse_registry(document)


def test_ensemble_without_steps_is_rejected_naming_it() -> None:
    # Given an ensemble with an empty step list
    document = {"services": [model("m"), ensemble("lonely", [])]}
    # When the registry is parsed, Then the ensemble is named
    with pytest.raises(RegistryInvalid, match=r"ensemble 'lonely' has no steps"):
        parse_registry(document)


def test_invalid_expression_is_rejected_naming_the_expression() -> None:
    # Given a reference that is not JSONata
    document = {"services": [model("m"), ensemble("e", [step("a", mapping={"x": "{{ input.[[ }}"})])]}
    # When the registry is parsed, Then the expression is named
    with pytest.raises(RegistryInvalid, match=r"'input\.\[\[' is not a valid JSONata expression"):
        parse_registry(document)


def test_step_name_used_twice_is_rejected() -> None:
    # Given two steps with one name
    document = {"services": [model("m"), ensemble("e", [step("a"), step("a")])]}
    # When the registry is parsed, Then the duplicate is named
    with pytest.raises(RegistryInvalid, match=r"step 'a': step name used twice"):
        parse_registry(document)


def test_reference_reading_two_sources_depends_on_both():
    # Given a stacker input whose one expression reads two earlier steps
    from chorus.model import plan
    from chorus.model.registry import parse_registry

    steps = [step("a"), step("b"), step("c", mapping={"x": "{{ a.output.p > b.output.p ? a.output.p : b.output.p }}"})]
    registry = parse_registry({"services": [model("m"), ensemble("e", steps)]})
    # Then the step depends on both, so it runs a level after them
    assert registry.get("e").step("c").dependencies() == {"a", "b"}
    assert [[s.name for s in level] for level in plan.levels(registry.get("e"))] == [["a", "b"], ["c"]]


# --- decision workflows: conditions, rules, optional steps, fan-out, retries -------------------------

from chorus.model import plan  # noqa: E402
from tests.support.registry_documents import rule  # noqa: E402


def parse(steps: list[dict[str, Any]], output: Any = "{{ a }}", **services: Any) -> Any:
    models = [model("m"), {**model("r"), "retryableErrors": ["ThrottlingException"]}]
    return parse_registry({"services": [*models, ensemble("e", steps, output)]})


@pytest.mark.parametrize(
    ("steps", "output", "message"),
    [
        # conditions that do not parse, or read what they cannot
        (
            [step("a"), {**step("b"), "when": "a.output.p >"}],
            "{{ b }}",
            r"step 'b' when: 'a.output.p >' is not a valid",
        ),
        ([step("a"), {**step("b"), "when": "ghost.output.p > 1"}], "{{ b }}", r"step 'b' when: .* refers to 'ghost'"),
        ([{**step("a"), "when": "a.status = 'x'"}], "{{ a }}", r"step 'a' when: refers to itself"),
        ([{**step("a"), "when": "$.input.x"}], "{{ a }}", r"step 'a' when: .*reads the whole scope"),
        # rules that do not parse or read later steps
        (
            [rule("a", {"x": "{{ b.output.y }}"}), step("b")],
            "{{ a }}",
            r"step 'a' rule default: .* refers to 'b', which is not a preceding step",
        ),
        (
            [step("a"), rule("b", {}, cases=[{"when": "a.output.cost >= 0.7 *", "output": {}}])],
            "{{ b }}",
            r"step 'b' rule case 1 when: .* is not a valid JSONata",
        ),
        # fan-out
        (
            [{**step("a"), "forEach": "input.count > 3"}],
            "{{ x }}",
            r"step 'a': forEach 'input.count > 3' is not a list",
        ),
        ([step("a", mapping={"x": "{{ item.pixels }}"})], "{{ a }}", r"step 'a' input: .* reads `item`"),
        (
            [
                {**step("a"), "forEach": "input.images", "input": "{{ item }}"},
                step("b", mapping={"x": "{{ a.output.label }}"}),
            ],
            "{{ b }}",
            r"step 'b' input: 'a.output.label' reads a field of one item of 'a', which fans out",
        ),
        (
            [{**step("a"), "forEach": "input.images", "input": "{{ item }}"}, step("b", mapping="{{ a }}")],
            "{{ b }}",
            r"step 'b': \{\{ a \}\} hands on the payload of step 'a', but 'a' fans out",
        ),
        # retries need the service to say what is retryable; rules cannot fan out or retry
        (
            [{**step("a"), "retry": {"maxAttempts": 3}}],
            "{{ a }}",
            r"step 'a': retry needs retryableErrors on service 'm'",
        ),
        ([{**rule("a", {}), "forEach": "input.x"}], "{{ a }}", r"rule step 'a' cannot have forEach"),
        ([{"name": "a", "service": "m", "rule": {"default": {}}}], "{{ a }}", r"exactly one of `service`"),
        ([{**step("a"), "maxItems": 5}], "{{ a }}", r"maxItems and maxConcurrency need forEach"),
    ],
)
def test_decision_declarations_are_validated_naming_the_culprit(steps: list, output: Any, message: str) -> None:
    with pytest.raises(RegistryInvalid, match=message):
        parse(steps, output)


def test_rules_conditions_fan_out_and_retries_validate_and_order_the_steps() -> None:
    steps = [
        step("a"),
        {**step("b", service="r"), "when": "a.output.p < 0.9", "retry": {"maxAttempts": 3}, "optional": True},
        {**step("c"), "forEach": "input.images", "input": {"x": "{{ item }}", "hint": "{{ b.output.label ?? -1 }}"}},
        rule(
            "d",
            {"labels": "{{ [$map(c.output, function($o) { $o.label })] }}"},
            cases=[
                {"when": "b.status = 'succeeded' and b.output.p > 0.5", "output": {"label": "{{ b.output.label }}"}}
            ],
        ),
    ]
    registry = parse(steps, "{{ d }}")
    levels = [[s.name for s in level] for level in plan.levels(registry.get("e"))]
    assert levels == [["a"], ["b"], ["c"], ["d"]]
    assert registry.get("e").step("d").dependencies() == {"b", "c"}


def test_ensemble_that_could_exceed_the_history_limit_is_refused_with_the_numbers() -> None:
    # Given six fan-outs of 200 items whose items retry up to 5 times
    wide = {"forEach": "input.images", "input": "{{ item }}", "maxItems": 200, "retry": {"maxAttempts": 5}}
    steps = [{**step(name, service="r"), **wide} for name in "abcdef"]
    # When the registry is parsed, Then it is refused naming the bound and Step Functions' limit
    with pytest.raises(RegistryInvalid, match=r"ensemble 'e': up to \d+ history events .* allows 25000"):
        parse([*steps, rule("z", {})], "{{ z }}")


def test_ensemble_whose_state_could_exceed_256_kib_is_refused() -> None:
    steps = [{**step("a"), "forEach": "input.images", "input": "{{ item }}", "maxItems": 1000}, rule("z", {})]
    with pytest.raises(RegistryInvalid, match=r"its state could reach \d+ bytes; Step Functions allows 262144 .*'a'"):
        parse(steps, "{{ z }}")


def test_packaged_decision_demos_stay_within_the_limits() -> None:
    registry = parse_registry(json.loads(PACKAGED_REGISTRY.read_text()))
    for name in ("digits-cascade", "digits-batch"):
        ensemble_ = registry.get(name)
        assert plan.history_events(ensemble_) < plan.MAX_HISTORY_EVENTS
        assert plan.state_bytes(ensemble_) < plan.MAX_STATE_BYTES


@pytest.mark.parametrize(
    ("capture", "problem"),
    [
        ({"samplingPercent": 101}, r"samplingPercent"),
        ({"samplingPercent": -1}, r"samplingPercent"),
        ({"samplingPercent": 50, "inputs": False, "outputs": False}, r"capture needs inputs or outputs"),
        ({"samplingPercent": 50, "sample": 3}, r"sample"),
        ({}, r"samplingPercent"),
    ],
)
def test_a_bad_capture_declaration_is_rejected_naming_the_field(capture: dict[str, Any], problem: str) -> None:
    document = {"services": [{**model("m"), "capture": capture}]}
    with pytest.raises(RegistryInvalid, match=problem):
        parse_registry(document)


def test_capture_is_off_unless_declared_and_on_for_the_demo_services() -> None:
    assert parse_registry({"services": [model("m")]}).get("m").capture is None
    packaged = parse_registry(json.loads(PACKAGED_REGISTRY.read_text()))
    assert all(s.capture is not None and s.capture.sampling_percent == 100 for s in packaged.services)
