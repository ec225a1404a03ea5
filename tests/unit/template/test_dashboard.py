"""The stage's CloudWatch dashboard (`Dashboard` in template.yaml) names only what exists.

Its body is a `!Sub` of JSON. Each `${X}` / `${X.Attr}` is replaced by the placeholder `<<X>>` /
`<<X.Attr>>` before parsing, so the test sees which parameter or resource every value names.
Then:
- every metric in the stack's namespace (`POWERTOOLS_METRICS_NAMESPACE`) is one the code emits
  (`metrics_code.py`), with the dimensions the code gives it: the handler's metrics as
  `service = <application>`, the per-service ones through SEARCH over exactly the dimensions
  `per_service` adds (`{ns,service}` for predictions, `{ns,service,step}` for ensemble steps) —
  and every metric the code emits is on the dashboard;
- every metric in an AWS namespace is one that service publishes, about a resource of this
  template: each function's errors and throttles, each queue's depth and age, each dead-letter
  queue's depth, the API by its name, the state machines by their shared name prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.unit.template import metrics_code
from tests.unit.template.test_template import dead_letter_queues, load_template, resources_of

PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName"}

# What AWS publishes, per namespace, that the dashboard may graph (AWS's metric references for
# SQS, Lambda, API Gateway REST APIs and Step Functions executions).
AWS_METRICS = {
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateAgeOfOldestMessage",
    },
    "AWS/Lambda": {"Errors", "Throttles"},
    "AWS/ApiGateway": {"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"},
    "AWS/States": {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"},
}
# The resource each AWS namespace's dimension names, and how the body names it.
AWS_DIMENSIONS = {
    "AWS/SQS": ("QueueName", "AWS::SQS::Queue", "QueueName"),
    "AWS/Lambda": ("FunctionName", "AWS::Serverless::Function", None),
}

# Capture and drift are a service's, never a step's (a step is captured under its own service).
SERVICE_ONLY = {"CaptureRecordsDropped", "MonitoredRecords", "DriftedFeatures"}
PER_FEATURE_SCHEMA = ("service", "feature")  # chorus.core.observability.per_feature
SEARCH = re.compile(r"^SEARCH\('\{(?P<schema>[^}]*)\}\s*(?P<terms>.*?)',\s*'(?P<stat>[^']+)',\s*(?P<period>\d+)\)$")
PLACEHOLDER = re.compile(r"<<([^<>]+)>>")


@dataclass(frozen=True)
class Graphed:
    """One metric or SEARCH on the dashboard, as its widget names it."""

    widget: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...] = ()  # a metric's (name, value) pairs
    schema: tuple[str, ...] | None = None  # a SEARCH's dimension names
    terms: str = ""  # a SEARCH's terms besides MetricName


def body_text(template: dict[str, Any]) -> str:
    source = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(source, str), "the body is one !Sub string, without a variable map"

    def placeholder(match: re.Match[str]) -> str:
        inner = match.group(1)
        return "${" + inner[1:] + "}" if inner.startswith("!") else f"<<{inner}>>"

    return re.sub(r"\$\{([^}]+)\}", placeholder, source)


def body(template: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(body_text(template)))


def widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body(template)["widgets"])


def graphed(template: dict[str, Any]) -> Iterator[Graphed]:
    for widget in widgets(template):
        if widget["type"] != "metric":
            continue
        title = widget["properties"]["title"]
        for line in widget["properties"]["metrics"]:
            options = line[-1] if isinstance(line[-1], dict) else {}
            fields = line[:-1] if options else line
            if "expression" in options:
                assert not fields, f"{title}: an expression line holds only its options"
                found = SEARCH.match(options["expression"])
                assert found, f"{title}: only SEARCH expressions: {options['expression']}"
                schema = [part.strip().strip('"') for part in found["schema"].split(",")]
                names = re.findall(r'MetricName="([^"]+)"', found["terms"])
                assert len(names) == 1, f"{title}: one exact MetricName per SEARCH: {options['expression']}"
                terms = re.sub(r'MetricName="[^"]+"', "", found["terms"]).strip()
                yield Graphed(title, schema[0], names[0], schema=tuple(schema[1:]), terms=terms)
                continue
            assert "." not in fields, f"{title}: write every line out (no '.' shorthand)"
            namespace, name, *pairs = fields
            assert len(pairs) % 2 == 0, f"{title}: {line}"
            yield Graphed(title, namespace, name, tuple(zip(pairs[::2], pairs[1::2], strict=True)))


def namespace_text(template: dict[str, Any]) -> str:
    """The stack's metric namespace as the body spells it (`Chorus/<<Stage>>`)."""
    value = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    source = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{([^}]+)\}", r"<<\1>>", str(source))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def lines(template: dict[str, Any]) -> list[Graphed]:
    return list(graphed(template))


# --- the dashboard itself ---------------------------------------------------------------------


def test_one_dashboard_named_after_the_stage(template: dict[str, Any]) -> None:
    (name,) = resources_of(template, "AWS::CloudWatch::Dashboard")
    assert template["Resources"][name]["Properties"]["DashboardName"] == {"Fn::Sub": "chorus-${Stage}"}


def test_every_substitution_names_a_parameter_or_a_resource_of_the_template(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for reference in PLACEHOLDER.findall(body_text(template)):
        name, _, attribute = reference.partition(".")
        if not attribute:
            assert name in template["Parameters"] or name in resources or name in PSEUDO_PARAMETERS, reference
            continue
        assert name in resources, reference
        if resources[name]["Type"] == "AWS::SQS::Queue":
            assert attribute in {"QueueName", "Arn", "QueueUrl"}, reference


def test_every_metric_widget_is_in_the_stack_region_and_no_widgets_overlap(template: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for widget in widgets(template):
        x, y, width, height = (widget[k] for k in ("x", "y", "width", "height"))
        assert x >= 0 and x + width <= 24, widget
        cells = {(column, row) for column in range(x, x + width) for row in range(y, y + height)}
        assert not cells & taken, f"overlapping widget at {x},{y}"
        taken |= cells
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "<<AWS::Region>>", widget["properties"]["title"]


# --- the code's metrics ----------------------------------------------------------------------


def test_the_dashboard_names_only_metrics_the_code_emits_with_their_dimensions(
    template: dict[str, Any], lines: list[Graphed]
) -> None:
    emitted = metrics_code.emitted()
    dimensions = metrics_code.per_service_dimensions()
    application = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    ours = [line for line in lines if not line.namespace.startswith("AWS/")]
    assert ours, "the dashboard shows the code's metrics"
    for line in ours:
        assert line.namespace == namespace_text(template), f"{line.widget}: {line.namespace}"
        if line.schema is None:
            assert line.name in emitted.shared, f"{line.widget}: {line.name} is not a metric the code emits"
            assert line.dimensions == (("service", application),), f"{line.widget}: {line.name} {line.dimensions}"
        elif line.schema == PER_FEATURE_SCHEMA:
            assert line.name in emitted.per_feature, f"{line.widget}: {line.name} is not a per-feature metric"
            assert line.terms == "", f"{line.widget}: every feature's line, unfiltered"
        else:
            assert line.name in emitted.per_service, f"{line.widget}: {line.name} is not a per-service metric"
            # exactly `service`, or `service` and `step`: the dimension sets per_service writes
            assert line.schema in {dimensions[:1], dimensions}, f"{line.widget}: {line.schema}"
            assert line.terms == "", f"{line.widget}: every service's line, unfiltered"


def test_every_metric_the_code_emits_is_on_the_dashboard(lines: list[Graphed]) -> None:
    emitted = metrics_code.emitted()
    dimensions = metrics_code.per_service_dimensions()
    shown_shared = {line.name for line in lines if line.schema is None and not line.namespace.startswith("AWS/")}
    per_service = {line.name for line in lines if line.schema == dimensions[:1]}
    per_step = {line.name for line in lines if line.schema == dimensions}
    per_feature = {line.name for line in lines if line.schema == PER_FEATURE_SCHEMA}
    assert shown_shared == emitted.shared
    assert per_service == emitted.per_service - {"PredictionsSkipped"}  # only steps are skipped
    # the steps: their outcomes and how long they ran (a step waits for its ensemble, not for input)
    assert per_step == emitted.per_service - {
        "PredictionsExpired",
        "PredictionsSubmitted",
        "PredictionWaitSeconds",
        *SERVICE_ONLY,
    }
    assert per_feature == emitted.per_feature


def test_the_issue_metrics_are_what_the_code_emits_per_service() -> None:
    assert metrics_code.per_service_dimensions() == ("service", "step")
    assert metrics_code.emitted().per_service >= {
        "PredictionsSubmitted",
        "PredictionsSucceeded",
        "PredictionsFailed",
        "PredictionsCanceled",
        "PredictionsExpired",
        "PredictionWaitSeconds",
        "PredictionRunSeconds",
    }
    assert not metrics_code.emitted().shared & metrics_code.emitted().per_service


# --- AWS's metrics about this template's resources ----------------------------------------------


def test_aws_metrics_are_ones_aws_publishes_about_resources_of_the_template(
    template: dict[str, Any], lines: list[Graphed]
) -> None:
    for line in (line for line in lines if line.namespace.startswith("AWS/")):
        assert line.name in AWS_METRICS.get(line.namespace, set()), f"{line.widget}: {line.namespace} {line.name}"
        if line.namespace in AWS_DIMENSIONS:
            dimension, resource_type, attribute = AWS_DIMENSIONS[line.namespace]
            ((name, value),) = line.dimensions
            (reference,) = PLACEHOLDER.fullmatch(value).groups()  # type: ignore[union-attr]
            logical_id, _, got = reference.partition(".")
            assert name == dimension and (got or None) == attribute, f"{line.widget}: {line.dimensions}"
            assert template["Resources"][logical_id]["Type"] == resource_type, f"{line.widget}: {logical_id}"


def named(lines: list[Graphed], namespace: str, metric: str) -> list[str]:
    """The logical ids a namespace's metric is graphed for."""
    return [
        PLACEHOLDER.fullmatch(value).group(1).partition(".")[0]  # type: ignore[union-attr]
        for line in lines
        if line.namespace == namespace and line.name == metric
        for _, value in line.dimensions
    ]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_its_errors_and_throttles_graphed_once(
    template: dict[str, Any], lines: list[Graphed], metric: str
) -> None:
    graphed_for = named(lines, "AWS/Lambda", metric)
    assert sorted(graphed_for) == sorted(resources_of(template, "AWS::Serverless::Function"))


def test_every_queue_has_its_depth_and_age_graphed_and_every_dead_letter_queue_its_depth(
    template: dict[str, Any], lines: list[Graphed]
) -> None:
    dlqs = dead_letter_queues(template)
    queues = set(resources_of(template, "AWS::SQS::Queue")) - dlqs
    assert queues == {"UploadQueue", "DeadlineQueue", "DeliveryQueue"}
    depth = named(lines, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert sorted(depth) == sorted(queues | dlqs)
    assert set(named(lines, "AWS/SQS", "ApproximateAgeOfOldestMessage")) == queues


def test_the_api_is_graphed_by_its_name_with_errors_and_latency(template: dict[str, Any], lines: list[Graphed]) -> None:
    api_name = re.sub(r"\$\{([^}]+)\}", r"<<\1>>", template["Resources"]["ChorusApi"]["Properties"]["Name"]["Fn::Sub"])
    api_lines = [line for line in lines if line.namespace == "AWS/ApiGateway"]
    assert {line.dimensions for line in api_lines} == {(("ApiName", api_name),)}
    assert {line.name for line in api_lines} >= {"4XXError", "5XXError", "Latency"}


def test_state_machines_are_searched_by_the_name_prefix_every_ensemble_shares(
    template: dict[str, Any], lines: list[Graphed]
) -> None:
    # The ensembles' state machines are generated (chorus_compiler/template.py): a SEARCH over the
    # stage's name prefix finds every one, including ensembles added later.
    searched = [line for line in lines if line.namespace == "AWS/States"]
    assert {line.name for line in searched} >= {"ExecutionsFailed", "ExecutionsTimedOut"}
    prefixes = set()
    for line in searched:
        assert line.schema == ("StateMachineArn",), line
        (prefix,) = re.fullmatch(r"StateMachineArn=stateMachine:(\S+)", line.terms).groups()  # type: ignore[union-attr]
        prefixes.add(prefix)
    assert prefixes == {"chorus-<<Stage>>"}
    machines = resources_of(template, "AWS::Serverless::StateMachine")
    assert machines
    for name, machine in machines.items():
        assert machine["Properties"]["Name"]["Fn::Sub"].startswith("chorus-${Stage}-"), name


def test_names_built_from_the_stage_are_whole_names_or_the_state_machine_search(template: dict[str, Any]) -> None:
    # As everywhere in the template (test_every_name_pattern_built_from_the_stage_continues_with_a_hyphen),
    # chorus-<Stage> is followed by "-" unless it is a whole name (the API's). The one exception is
    # the state machines' SEARCH term: CloudWatch matches it token by token, so a trailing hyphen
    # would change nothing; its limit (stage `dev` also finds stage `dev2`'s machines: digits start
    # a token) is stated in docs/runbook.md, and each machine's own alarms are exact.
    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for text in strings(body(template)):
        for match in re.finditer(r"chorus-<<Stage>>(?!-)", text):
            whole = match.start() == 0 and match.end() == len(text)
            searched = text.startswith("SEARCH('{AWS/States,StateMachineArn}") and text[: match.start()].endswith(
                "StateMachineArn=stateMachine:"
            )
            assert whole or searched, f"{text!r} uses chorus-<Stage> as a prefix"
