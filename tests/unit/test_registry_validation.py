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
    with pytest.raises(RegistryInvalid, match=r"step 'a': refers to itself"):
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


def test_invalid_jmespath_is_rejected_naming_the_expression() -> None:
    # Given a reference that is not JMESPath
    document = {"services": [model("m"), ensemble("e", [step("a", mapping={"x": "{{ input.[[ }}"})])]}
    # When the registry is parsed, Then the expression is named
    with pytest.raises(RegistryInvalid, match=r"'input\.\[\[' is not valid JMESPath"):
        parse_registry(document)


def test_step_name_used_twice_is_rejected() -> None:
    # Given two steps with one name
    document = {"services": [model("m"), ensemble("e", [step("a"), step("a")])]}
    # When the registry is parsed, Then the duplicate is named
    with pytest.raises(RegistryInvalid, match=r"step 'a': step name used twice"):
        parse_registry(document)


def test_reference_reading_two_sources_is_rejected():
    # Given a stacker input whose one expression hides a dependency on a second step
    from chorus.core.errors import RegistryInvalid
    from chorus.model.registry import parse_registry

    document = {
        "services": [
            {
                "name": "m",
                "kind": "model",
                "endpoint": {"name": "m", "mode": "sync"},
                "contentTypes": ["application/json"],
                "maxInputBytes": 10,
            },
            {
                "name": "e",
                "kind": "ensemble",
                "contentTypes": ["application/json"],
                "maxInputBytes": 10,
                "steps": [
                    {"name": "a", "service": "m"},
                    {"name": "b", "service": "m"},
                    {"name": "c", "service": "m", "input": {"x": "{{ a.output.p || b.output.p }}"}},
                ],
                "output": "{{ c }}",
            },
        ]
    }
    # Then validation names both sources
    with pytest.raises(RegistryInvalid, match="reads a, b"):
        parse_registry(document)
