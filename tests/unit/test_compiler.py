"""Compiling ensemble declarations to Amazon States Language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from chorus.core.errors import RegistryInvalid
from chorus.model.plan import MAX_PARALLEL_BRANCHES, levels, step_timeouts
from chorus.model.registry import PACKAGED_REGISTRY, Registry, parse_registry
from chorus_compiler.compiler import (
    REPOSITORY,
    STATE_MACHINES,
    SUBSTITUTIONS,
    compile_ensemble,
    compile_registry,
    main,
    state_count,
    success_path_transitions,
    to_json,
)
from tests.support.registry_documents import ensemble, model

WAIT_FOR_CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
DUMMY_ARNS = {
    "GetTransformCallArn": "arn:aws:lambda:us-east-1:123456789012:function:get-transform-call",
    "SuccessTopicArn": "arn:aws:sns:us-east-1:123456789012:success",
    "ErrorTopicArn": "arn:aws:sns:us-east-1:123456789012:error",
}


@pytest.fixture(scope="module")
def packaged() -> Registry:
    return parse_registry(json.loads(PACKAGED_REGISTRY.read_text()))


@pytest.fixture(scope="module")
def digits(packaged: Registry) -> dict[str, Any]:
    return compile_ensemble(packaged.get("digits-ensemble"), packaged)


def compiled(steps: list[dict[str, Any]], output: Any = "{{ s0 }}") -> dict[str, Any]:
    registry = parse_registry({"services": [model("m"), ensemble("e", steps, output)]})
    return compile_ensemble(registry.get("e"), registry)


def all_states(asl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those inside Parallel branches."""
    for name, state in asl["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)


def step_tasks(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in all_states(asl) if s.get("Resource") == WAIT_FOR_CALLBACK}


def substituted(asl: dict[str, Any]) -> str:
    text = to_json(asl)
    for name, arn in DUMMY_ARNS.items():
        text = text.replace("${" + name + "}", arn)
    return text


def test_independent_steps_run_in_one_parallel_state(digits: dict[str, Any]) -> None:
    # Given digits-ensemble (svm and forest read only the input)
    # When it is compiled (fixture), Then execution starts with one Parallel with a branch per step
    first = digits["States"][digits["StartAt"]]
    assert first["Type"] == "Parallel"
    assert [b["StartAt"] for b in first["Branches"]] == ["svm", "forest"]
    assert first["ResultSelector"] == {"svm.$": "$[0]", "forest.$": "$[1]"}
    assert first["ResultPath"] == "$.results.Level1"


def test_dependent_step_follows_and_receives_both_results(digits: dict[str, Any]) -> None:
    # Given digits-ensemble, whose stacker reads svm and forest
    # When it is compiled, Then stacker is a Task right after the Parallel, given both results
    first = digits["States"][digits["StartAt"]]
    stacker = digits["States"][first["Next"]]
    assert first["Next"] == "stacker" and stacker["Type"] == "Task"
    assert stacker["Parameters"]["Payload"]["outputs"] == {
        "svm.$": "$.results.Level1.svm",
        "forest.$": "$.results.Level1.forest",
    }
    assert stacker["ResultPath"] == "$.results.stacker"


def test_step_payload_names_the_step_and_never_carries_its_declaration(digits: dict[str, Any]) -> None:
    # Given the compiled digits-ensemble
    # When the stacker task is read, Then get-transform-call receives the step's name (its declaration is
    # the registry's, one place for it), the token, the parent, the attempt and the outcomes it reads
    payload = digits["States"]["stacker"]["Parameters"]["Payload"]
    assert payload["step"] == {"name": "stacker", "service": "digits-stacker"}
    assert payload["attempt.$"] == "$$.State.RetryCount" and payload["action"] == "step"
    assert "{{" not in json.dumps(digits)
    assert payload["taskToken.$"] == "$$.Task.Token"
    assert payload["parent.$"] == "$.prediction"


def test_whole_payload_output_publishes_the_step_location(digits: dict[str, Any]) -> None:
    # Given digits-ensemble's output "{{ stacker }}"
    # When it is compiled, Then the success notification points at stacker's result, no render task
    message = digits["States"]["NotifySuccess"]["Parameters"]["Message"]
    assert message["responseParameters"] == {
        "contentType.$": "$.results.stacker.contentType",
        "outputLocation.$": "$.results.stacker.outputLocation",
    }
    assert message["invocationStatus"] == "Completed"
    assert message["requestParameters"] == {"endpointName": "digits-ensemble"}
    assert "RenderOutput" not in digits["States"]


def test_output_mapping_is_rendered_by_a_plain_invoke_before_success() -> None:
    # Given an ensemble whose output picks a field out of a step
    asl = compiled([{"name": "s0", "service": "m"}], output={"label": "{{ s0.output.label }}"})
    # When it is compiled, Then a lambda:invoke renders it and the notification reads its result
    render_task = asl["States"]["RenderOutput"]
    assert render_task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert render_task["Parameters"]["Payload"] == {
        "action": "output",
        "parent.$": "$.prediction",
        "outputs": {"s0.$": "$.results.s0"},
    }
    assert asl["States"]["s0"]["Next"] == "RenderOutput" and render_task["Next"] == "NotifySuccess"
    message = asl["States"]["NotifySuccess"]["Parameters"]["Message"]
    assert message["responseParameters"]["outputLocation.$"] == "$.results.Output.outputLocation"


def test_nested_ensemble_is_a_step_on_the_inner_ensemble(packaged: Registry) -> None:
    # Given digits-committee, whose step `ensemble` is the digits-ensemble ensemble
    # When it is compiled
    asl = compile_ensemble(packaged.get("digits-committee"), packaged)
    # Then the nested ensemble is an ordinary callback step next to svm, and its result is the output
    tasks = step_tasks(asl)
    assert tasks["ensemble"]["Parameters"]["Payload"]["step"]["service"] == "digits-ensemble"
    assert asl["States"]["Level1"]["Next"] == "NotifySuccess"
    message = asl["States"]["NotifySuccess"]["Parameters"]["Message"]
    assert message["responseParameters"]["outputLocation.$"] == "$.results.Level1.ensemble.outputLocation"


def test_level_wider_than_the_cap_is_split_into_consecutive_parallel_states() -> None:
    # Given ten independent steps
    steps = [{"name": f"s{i}", "service": "m"} for i in range(10)]
    # When they are compiled
    asl = compiled(steps)
    # Then they run as 8 + 2 branches in two consecutive Parallel states
    first, second = asl["States"]["Level1Part1"], asl["States"]["Level1Part2"]
    assert asl["StartAt"] == "Level1Part1" and first["Next"] == "Level1Part2"
    assert len(first["Branches"]) == MAX_PARALLEL_BRANCHES and len(second["Branches"]) == 2
    assert second["ResultSelector"] == {"s8.$": "$[0]", "s9.$": "$[1]"}


def test_levels_follow_references_not_declaration_order() -> None:
    # Given c reading a, b independent, d reading c
    registry = parse_registry(
        {
            "services": [
                model("m"),
                ensemble(
                    "e",
                    [
                        {"name": "a", "service": "m"},
                        {"name": "c", "service": "m", "input": "{{ a.output.x }}"},
                        {"name": "b", "service": "m"},
                        {"name": "d", "service": "m", "input": ["{{ c.output.x }}", "{{ input.y }}"]},
                    ],
                    "{{ d }}",
                ),
            ]
        }
    )
    # When levels are computed, Then independent steps share the first level
    assert [[s.name for s in level] for level in levels(registry.get("e"))] == [["a", "b"], ["c"], ["d"]]


def test_definitions_use_exactly_the_three_substitutions(packaged: Registry) -> None:
    # Given every packaged ensemble, When compiled, Then the only ${...} are the three template ones
    for service in packaged.ensembles():
        text = to_json(compile_ensemble(service, packaged))
        assert set(re.findall(r"\$\{([^}]*)\}", text)) == set(SUBSTITUTIONS), service.name
        assert "arn:aws:lambda:" not in text and "arn:aws:sns:" not in text


def test_dollar_brace_in_a_mapping_never_reaches_the_definition() -> None:
    # Given a mapping containing text SAM would take for a substitution
    # When compiled, Then the definition does not carry it (mappings stay in the registry), so the
    # template's substitutions cannot be confused
    asl = compiled([{"name": "s0", "service": "m", "input": {"k": "${Secret}"}}], output={"k": "${Other}"})
    assert "${Secret}" not in json.dumps(asl) and "${Other}" not in json.dumps(asl)


def test_mapping_key_ending_in_dollar_is_rejected() -> None:
    # Given a mapping key Step Functions would read as a JSONPath
    # When compiled, Then the error names the key
    with pytest.raises(RegistryInvalid, match=r"step 's0': mapping key 'x\.\$'"):
        compiled([{"name": "s0", "service": "m", "input": {"a": [{"x.$": "$.secret"}]}}])


def test_definitions_have_no_pass_states(packaged: Registry) -> None:
    # Given every packaged ensemble, When compiled, Then no state is a Pass
    for service in packaged.ensembles():
        assert all(s["Type"] != "Pass" for _, s in all_states(compile_ensemble(service, packaged)))


def test_every_step_task_has_a_timeout_from_the_input_and_a_catch(packaged: Registry) -> None:
    # Given every packaged ensemble, When compiled
    for service in packaged.ensembles():
        # Then each callback task reads its timeout from the execution input and catches timeouts
        for name, task in step_tasks(compile_ensemble(service, packaged)).items():
            assert task["TimeoutSecondsPath"] == f"$.timeouts.{name}"
            assert "HeartbeatSeconds" not in task
            assert ["States.Timeout"] in [c["ErrorEquals"] for c in task["Catch"]]


def test_every_task_retries_with_full_jitter(packaged: Registry) -> None:
    # Given every packaged ensemble, When compiled, Then every Task has a bounded jittered retry
    for service in packaged.ensembles():
        for name, state in all_states(compile_ensemble(service, packaged)):
            if state["Type"] == "Task":
                (retry,) = state["Retry"]
                assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] == 10, name


def test_step_task_retries_only_transient_lambda_errors(digits: dict[str, Any]) -> None:
    # Given digits-ensemble, When compiled, Then a step is retried on Lambda service errors only
    (retry,) = digits["States"]["stacker"]["Retry"]
    assert all(error.startswith("Lambda.") for error in retry["ErrorEquals"])
    assert (retry["IntervalSeconds"], retry["BackoffRate"], retry["MaxAttempts"]) == (1, 2, 3)


def test_timed_out_branch_step_fails_with_a_cause_naming_it(digits: dict[str, Any]) -> None:
    # Given the forest branch of digits-ensemble, When compiled
    branch = digits["States"]["Level1"]["Branches"][1]
    (catch,) = branch["States"]["forest"]["Catch"]
    # Then its timeout leads to a branch-local Fail naming the step and service
    assert branch["States"][catch["Next"]] == {
        "Type": "Fail",
        "Error": "StepTimedOut",
        "Cause": "step 'forest' (digits-forest) timed out",
    }


def test_failed_parallel_notifies_the_error_cause_then_fails(digits: dict[str, Any]) -> None:
    # Given digits-ensemble, When compiled
    (catch,) = digits["States"]["Level1"]["Catch"]
    notify = digits["States"][catch["Next"]]
    # Then any branch failure is published with its cause and the execution ends FAILED
    assert catch == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}
    assert notify["Parameters"]["TopicArn"] == "${ErrorTopicArn}"
    assert notify["Parameters"]["Message"]["failureReason.$"] == "$.error.Cause"
    assert notify["Parameters"]["Message"]["invocationStatus"] == "Failed"
    assert digits["States"][notify["Next"]]["Type"] == "Fail"


def test_timed_out_top_level_step_notifies_a_reason_naming_it(digits: dict[str, Any]) -> None:
    # Given the stacker step (alone in its level), When compiled
    timeout_catch, other_catch = digits["States"]["stacker"]["Catch"]
    notify = digits["States"][timeout_catch["Next"]]
    # Then a timeout publishes a static reason naming the step, other errors go to NotifyFailure
    assert notify["Parameters"]["Message"]["failureReason"] == "step 'stacker' (digits-stacker) timed out"
    assert notify["ResultSelector"] == {"Error": "StepTimedOut", "Cause": "step 'stacker' (digits-stacker) timed out"}
    assert notify["Next"] == "EnsembleFailed"
    assert other_catch["Next"] == "NotifyFailure"


def test_digits_ensemble_costs_five_transitions_per_successful_prediction(digits: dict[str, Any]) -> None:
    # Given digits-ensemble, When counted, Then Parallel + 2 branch tasks + stacker + NotifySuccess
    assert success_path_transitions(digits) == 5
    assert state_count(digits) == 10


def test_step_timeouts_default_to_the_service_timeout_plus_margin(packaged: Registry) -> None:
    # Given digits-ensemble's models (svm 60 s, forest 900 s, stacker 60 s)
    # When the execution input's timeouts are computed, Then each adds the 60 s margin
    assert step_timeouts(packaged.get("digits-ensemble"), packaged) == {"svm": 120, "forest": 960, "stacker": 120}


def test_nested_ensemble_step_waits_for_the_inner_critical_path(packaged: Registry) -> None:
    # Given digits-committee nesting digits-ensemble (critical path 960 + 120 s > its own 900 s)
    # When its timeouts are computed, Then the outer step outlasts every inner step
    assert step_timeouts(packaged.get("digits-committee"), packaged) == {"ensemble": 1140, "svm": 120}


def test_declared_step_timeout_wins() -> None:
    # Given a step with its own timeoutSeconds
    registry = parse_registry(
        {"services": [model("m"), ensemble("e", [{"name": "s0", "service": "m", "timeoutSeconds": 5}], "{{ s0 }}")]}
    )
    # When timeouts are computed, Then it is used as is
    assert step_timeouts(registry.get("e"), registry) == {"s0": 5}


def test_moto_parses_every_compiled_definition(packaged: Registry) -> None:
    # Given every packaged ensemble with its substitutions filled in
    for service in packaged.ensembles():
        # When moto's ASL parser reads it, Then it builds a program without syntax errors
        program, _ = AmazonStateLanguageParser.parse(substituted(compile_ensemble(service, packaged)))
        assert program is not None


def test_committed_definitions_equal_the_compiler_output(packaged: Registry) -> None:
    # Given the packaged registry, When compiled, Then statemachines/ holds exactly that text
    for path, text in compile_registry(packaged, "layers/chorus/chorus/model/services.json").items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run python -m chorus_compiler"
    assert main(["--check"]) == 0


def test_check_names_a_stale_file_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given an output directory where one definition was edited by hand
    assert main(["--out", str(tmp_path)]) == 0
    edited = tmp_path / "digits-ensemble.asl.json"
    edited.write_text(edited.read_text().replace("Level1", "Level9"))
    # When checked, Then the run fails naming that file only
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "digits-ensemble.asl.json is stale" in err and "digits-committee" not in err


def test_regenerating_removes_definitions_of_ensembles_that_no_longer_exist(tmp_path: Path) -> None:
    # Given a generated definition left behind by a removed ensemble, and a hand-written one
    (tmp_path / "gone.asl.json").write_text((STATE_MACHINES / "digits-ensemble.asl.json").read_text())
    (tmp_path / "manual.asl.json").write_text('{"StartAt": "x", "States": {}}')
    # When checked and then regenerated
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert main(["--out", str(tmp_path)]) == 0
    # Then only the generated orphan is removed
    assert not (tmp_path / "gone.asl.json").exists() and (tmp_path / "manual.asl.json").exists()


def test_invalid_registry_fails_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a registry with an ensemble on an unknown service
    registry_file = tmp_path / "services.json"
    registry_file.write_text(json.dumps({"services": [ensemble("e", [{"name": "a", "service": "x"}], "{{ a }}")]}))
    # When the compiler runs, Then it fails naming the culprit and writes nothing
    assert main(["--registry", str(registry_file), "--out", str(tmp_path / "out")]) == 1
    assert "unknown service 'x'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_template_block_holds_every_ensemble_and_is_checked(tmp_path: Path) -> None:
    # Given a copy of the template whose ensembles block lost an ensemble (a hand edit)
    from chorus_compiler.template import BEGIN_MARKER, logical_id

    template = tmp_path / "template.yaml"
    original = (REPOSITORY / "template.yaml").read_text()
    start = original.index("  DigitsBatchStateMachine:")
    end = original.index("  DigitsCommitteeStateMachine:")
    template.write_text(original[:start] + original[end:])
    out = tmp_path / "asl"
    # When checked, Then it is stale; when compiled, Then every ensemble has its four resources back
    assert main(["--check", "--out", str(out), "--template", str(template)]) == 1
    assert main(["--out", str(out), "--template", str(template)]) == 0
    text = template.read_text()
    assert text == original and text.count(BEGIN_MARKER) == 1
    for name in ("digits-ensemble", "digits-cascade", "digits-batch", "digits-committee"):
        for suffix in ("StateMachine", "LogGroup", "FailedAlarm", "TimedOutAlarm"):
            assert f"  {logical_id(name)}{suffix}:\n" in text


# --- decision workflows ---------------------------------------------------------------------------


def test_fan_out_is_an_items_task_then_a_map_of_the_step_task(packaged: Registry) -> None:
    # Given digits-batch (classify fans out over input.images, optional per item)
    asl = compile_ensemble(packaged.get("digits-batch"), packaged)
    states = asl["States"]
    # Then the items task lists the items into the step's results, and the Map iterates them
    assert asl["StartAt"] == "classifyItems"
    items = states["classifyItems"]
    assert items["Resource"] == "arn:aws:states:::lambda:invoke" and items["Parameters"]["Payload"]["action"] == "items"
    assert items["ResultPath"] == "$.results.classify" and items["Next"] == "classify"
    fan_out = states["classify"]
    assert fan_out["Type"] == "Map" and fan_out["ItemsPath"] == "$.results.classify.items"
    assert fan_out["MaxConcurrency"] == 10 and fan_out["ResultPath"] == "$.results.classify.outcomes"
    assert fan_out["ItemSelector"]["index.$"] == "$$.Map.Item.Value"
    processor = fan_out["ItemProcessor"]
    task = processor["States"][processor["StartAt"]]
    assert task["Resource"] == WAIT_FOR_CALLBACK and task["Parameters"]["Payload"]["item.$"] == "$.index"
    # And an item's failure is caught inside the item (optional per item); the step itself goes on too
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "classifyItemFailed"}]
    assert processor["States"]["classifyItemFailed"]["Type"] == "Pass"
    assert {c["Next"] for c in fan_out["Catch"]} == {"summary"}


def test_optional_step_catches_into_its_result_and_a_required_one_into_the_failure_path() -> None:
    asl = compiled(
        [
            {"name": "a", "service": "m", "optional": True},
            {"name": "b", "service": "m", "input": {"x": "{{ a.output.x ?? 0 }}"}},
        ],
        output="{{ b }}",
    )
    a, b = asl["States"]["a"], asl["States"]["b"]
    assert a["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.results.a", "Next": "b"}]
    assert [c["Next"] for c in b["Catch"]] == ["bTimedOut", "NotifyFailure"]


def test_optional_step_in_a_branch_ends_its_branch_with_a_pass() -> None:
    asl = compiled(
        [{"name": "a", "service": "m", "optional": True}, {"name": "b", "service": "m"}], output={"x": "{{ b }}"}
    )
    (branch_a, _) = asl["States"]["Level1"]["Branches"]
    assert branch_a["States"]["a"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "aFailed"}]
    assert branch_a["States"]["aFailed"] == {"Type": "Pass", "Comment": "optional step a failed", "End": True}


def test_retry_retries_only_what_the_service_declares_retryable_with_the_declared_backoff() -> None:
    registry = parse_registry(
        {
            "services": [
                {**model("m"), "retryableErrors": ["ThrottlingException"]},
                ensemble("e", [{"name": "a", "service": "m", "retry": {"maxAttempts": 4, "intervalSeconds": 3}}]),
            ]
        }
    )
    task = compile_ensemble(registry.get("e"), registry)["States"]["a"]
    assert task["Retry"][0] == {
        "ErrorEquals": ["StepRetryable"],
        "IntervalSeconds": 3,
        "BackoffRate": 2.0,
        "MaxAttempts": 3,
        "JitterStrategy": "FULL",
    }
    assert task["Parameters"]["Payload"]["attempt.$"] == "$$.State.RetryCount"


def test_rule_and_conditional_steps_are_the_same_task_and_the_output_is_rendered_when_it_may_be_absent() -> None:
    asl = compiled(
        [
            {"name": "a", "service": "m"},
            {"name": "b", "service": "m", "when": "a.output.p > 0.5"},
            {"name": "c", "rule": {"default": {"x": "{{ b.output.label ?? a.output.label }}"}}},
        ],
        output="{{ b }}",
    )
    states = asl["States"]
    assert states["c"]["Resource"] == WAIT_FOR_CALLBACK and states["c"]["Comment"] == "step c: rule"
    assert states["c"]["Parameters"]["Payload"]["outputs"] == {"a.$": "$.results.a", "b.$": "$.results.b"}
    # b may be skipped, so its payload cannot be published as is: the output is rendered
    assert "RenderOutput" in states and states["c"]["Next"] == "RenderOutput"
