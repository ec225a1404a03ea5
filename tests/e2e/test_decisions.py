"""Decision workflows end to end, over HTTP against the local stack: the cascade both ways, a batch
with a malformed item, step webhooks, and a 14-model + 3-rule ensemble on the scripted models
(two parallel levels, a condition, an optional step that fails, a fan-out over 20 items)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from chorus.model import plan
from chorus.model.registry import parse_registry
from tests.e2e.client import ChorusClient, digit_pixels, digit_png
from tests.support.aws_resources import REPO
from tests.support.registry_documents import packaged_with, stack_for_registry
from tests.support.webhook_receiver import WebhookReceiver

SCRIPTED_ENDPOINTS = REPO / "tests" / "fixtures" / "endpoints_scripted.json"
SURE_DIGIT, UNSURE_DIGIT = 1340, 1301  # the svm's top probability: 0.997 and 0.677


@pytest.fixture
def client(stack) -> ChorusClient:
    return stack.api()


def steps_by_name(prediction: dict) -> dict[str, dict]:
    return {step["name"]: step for step in prediction["steps"]}


def test_cascade_answers_from_the_svm_alone_when_it_is_sure(client):
    # Given a digit the svm is sure of
    pixels, label = digit_pixels(SURE_DIGIT)
    # When it goes through digits-cascade
    created = client.create({"service": "digits-cascade", "input": {"pixels": pixels}})
    finished = client.wait(created["id"], timeout=120)
    # Then the expensive path was skipped, with the condition and the value it saw, and the rule decided
    assert finished["status"] == "succeeded", finished
    steps = steps_by_name(finished)
    assert [(s["name"], s["kind"], s["status"]) for s in finished["steps"]] == [
        ("svm", "model", "succeeded"),
        ("forest", "model", "skipped"),
        ("stacker", "model", "skipped"),
        ("decide", "rule", "succeeded"),
    ]
    skipped = steps["forest"]["decision"]
    assert skipped["condition"] == "$max(svm.output.probabilities) < 0.9" and skipped["result"] is False
    assert len(skipped["values"]["svm.output.probabilities"]) == 10
    assert steps["decide"]["decision"]["case"] == "default"
    output = client.download(finished)
    assert output["decidedBy"] == "svm" and output["label"] == label and len(output["probabilities"]) == 10


def test_cascade_takes_the_expensive_path_when_the_svm_is_unsure(client):
    # Given a PNG of a digit the svm is unsure of
    image, _ = digit_png(UNSURE_DIGIT, size=32)
    created = client.create({"service": "digits-cascade", "contentType": "image/png"})
    client.upload(created, image)
    finished = client.wait(created["id"], timeout=150)
    # Then forest and stacker ran and the stacker decided
    assert finished["status"] == "succeeded", finished
    assert [s["status"] for s in finished["steps"]] == ["succeeded"] * 4
    steps = steps_by_name(finished)
    assert steps["forest"]["decision"]["result"] is True and steps["decide"]["decision"]["case"] == 1
    output = client.download(finished)
    stacker = client.download(client.get(steps["stacker"]["id"]))
    assert output == {**{k: stacker[k] for k in ("label", "probabilities")}, "decidedBy": "stacker"}


def test_batch_gives_null_for_a_malformed_image_and_still_succeeds(client):
    # Given three images, the second with 3 pixels
    images = [{"pixels": digit_pixels(1320)[0]}, {"pixels": [1, 2, 3]}, {"pixels": digit_pixels(1321)[0]}]
    labels = [digit_pixels(1320)[1], None, digit_pixels(1321)[1]]
    created = client.create({"service": "digits-batch", "input": {"images": images}})
    finished = client.wait(created["id"], timeout=150)
    # Then each image had its own prediction, the malformed one failed, and the summary counts it
    assert finished["status"] == "succeeded", finished
    classify = steps_by_name(finished)["classify"]
    assert classify["items"] == 3 and classify["failedItems"] == 1 and len(classify["ids"]) == 3
    assert classify["itemErrors"][0]["item"] == 1
    assert [client.get(i)["status"] for i in classify["ids"]] == ["succeeded", "failed", "succeeded"]
    assert client.download(finished) == {"labels": labels, "count": 3, "failed": 1}


def test_batch_items_are_listed_under_their_parent(client):
    images = [{"pixels": digit_pixels(1330 + i)[0]} for i in range(4)]
    created = client.create({"service": "digits-batch", "input": {"images": images}})
    finished = client.wait(created["id"], timeout=150)
    assert finished["status"] == "succeeded", finished
    listed = client.request("GET", "/predictions", params={"parentId": created["id"], "limit": 20}).json()
    assert sorted(p["stepName"] for p in listed["predictions"]) == ["classify"] * 4 + ["summary"]


def test_step_webhooks_tell_each_step_as_it_finishes(stack, client):
    receiver = WebhookReceiver()
    try:
        pixels, _ = digit_pixels(SURE_DIGIT)
        callback = {"type": "webhook", "url": receiver.url, "events": ["step", "completed"]}
        created = client.create({"service": "digits-cascade", "input": {"pixels": pixels}, "callback": callback})
        client.wait(created["id"], timeout=120)
        deadline = time.monotonic() + 30
        while len(receiver.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Then four step webhooks and one completed webhook arrived, each signed and each with its own id
        bodies = [Webhook(stack.webhook_secret).verify(r.body, r.headers) for r in receiver.received]
        events = [b.get("event", {}).get("step") for b in bodies if b.get("event")]
        assert sorted(events) == ["decide", "forest", "stacker", "svm"]
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 5
        assert [b["status"] for b in bodies if not b.get("event")] == ["succeeded"]
    finally:
        receiver.close()


def test_step_events_are_refused_for_a_model(client):
    response = client.submit(
        {
            "service": "digits-svm",
            "input": {"pixels": [0] * 64},
            "callback": {"type": "webhook", "url": "https://example.com/hook", "events": ["step"]},
        }
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_callback"


# --- a decision workflow the size of the insurer's: 14 models, 3 rules ------------------------------------


def scripted(service: str) -> str:
    return {"svm": "digits-svm", "forest": "digits-forest"}[service]


def insurer_ensemble() -> dict:
    level_one = [
        {"name": f"photo{i}", "service": scripted("svm" if i % 2 else "forest"), "input": "{{ input.image }}"}
        for i in range(1, 7)
    ]
    level_two = [
        {
            "name": f"check{i}",
            "service": scripted("forest" if i % 2 else "svm"),
            "input": {"pixels": "{{ input.image.pixels }}", "after": f"{{{{ photo{i}.output.label }}}}"},
        }
        for i in range(1, 6)
    ]
    broken = {
        "name": "appraisal",
        "service": scripted("forest"),
        "optional": True,
        "input": {"pixels": "{{ input.image.pixels }}", "fail": {"forest": "appraisal service down"}},
    }
    labels = ", ".join(
        [f"photo{i}.output.label" for i in range(1, 7)] + [f"check{i}.output.label" for i in range(1, 6)]
    )
    votes = {
        "name": "votes",
        "rule": {
            "cases": [
                {
                    "when": f"$count($filter([{labels}], function($l) {{ $l = photo1.output.label }})) >= 9",
                    "output": {"label": "{{ photo1.output.label }}", "agree": True},
                }
            ],
            "default": {"label": "{{ photo1.output.label }}", "agree": False},
        },
    }
    return {
        "name": "insurer",
        "kind": "ensemble",
        "description": "14 models and 3 rules, the size of the insurer seed's workflow.",
        "contentTypes": ["application/json"],
        "maxInputBytes": 262144,
        "timeoutSeconds": 600,
        "steps": [
            *level_one,
            *level_two,
            broken,
            votes,
            {
                "name": "tiebreak",
                "service": scripted("svm"),
                "when": "votes.output.agree = false",
                "input": "{{ input.image }}",
            },
            {
                "name": "damage",
                "service": scripted("svm"),
                "forEach": "input.photos",
                "input": "{{ item }}",
                "maxItems": 25,
                "maxConcurrency": 5,
            },
            {
                "name": "summary",
                "rule": {"default": {"labels": "{{ [$map(damage.output, function($o) { $o.label })] }}"}},
            },
            {
                "name": "decision",
                "rule": {
                    "cases": [
                        {
                            "when": "votes.output.agree and appraisal.status = 'failed'",
                            "output": {
                                "label": "{{ votes.output.label }}",
                                "photos": "{{ summary.output.labels }}",
                                "appraisal": "unavailable",
                                "tiebreak": "{{ tiebreak.output.label ?? null }}",
                            },
                        }
                    ],
                    "default": {
                        "label": "{{ tiebreak.output.label ?? votes.output.label }}",
                        "photos": "{{ summary.output.labels }}",
                    },
                },
            },
        ],
        "output": "{{ decision }}",
    }


@pytest.fixture(scope="module")
def insurer_stack(start_stack, tmp_path_factory):
    document = packaged_with(insurer_ensemble())
    for service in document["services"]:
        if service["name"] in {"digits-svm", "digits-forest"}:
            service["endpoint"]["name"] = service["name"].replace("digits-", "scripted-")
    directory = Path(tmp_path_factory.mktemp("insurer"))
    path = directory / "services.json"
    path.write_text(json.dumps(document))
    template = stack_for_registry(path, directory)
    running = start_stack(
        parameter_overrides={"RegistryFile": str(path)}, extra_endpoints=SCRIPTED_ENDPOINTS, template=template
    )
    return running, document


def test_fourteen_models_and_three_rules_run_within_step_functions_limits(insurer_stack):
    stack, document = insurer_stack
    registry = parse_registry(document)
    insurer = registry.get("insurer")
    # Given the declaration: 14 model steps, 3 rules, two parallel levels, within the limits at its maximum
    assert sum(s.service is not None for s in insurer.steps) == 14 and sum(s.is_rule for s in insurer.steps) == 3
    assert [len(level) for level in plan.levels(insurer)][:2] == [8, 6]
    assert plan.history_events(insurer) < plan.MAX_HISTORY_EVENTS and plan.state_bytes(insurer) < plan.MAX_STATE_BYTES
    # When a claim with 20 photos runs
    pixels, label = digit_pixels(SURE_DIGIT)
    photos = [{"pixels": digit_pixels(1350 + i)[0]} for i in range(20)]
    client = stack.api()
    created = client.create({"service": "insurer", "input": {"image": {"pixels": pixels}, "photos": photos}})
    finished = client.wait(created["id"], timeout=300)
    assert finished["status"] == "succeeded", json.dumps({k: finished.get(k) for k in ("error", "steps")})[:3000]
    # Then it succeeded past the failed optional step, skipped the tiebreak, and fanned out 20 items
    assert finished["status"] == "succeeded", finished
    steps = steps_by_name(finished)
    assert (
        steps["appraisal"]["status"] == "failed" and "appraisal service down" in steps["appraisal"]["error"]["message"]
    )
    assert steps["tiebreak"]["status"] == "skipped"
    assert steps["damage"]["items"] == 20 and steps["damage"]["failedItems"] == 0
    assert all(steps[f"photo{i}"]["status"] == "succeeded" for i in range(1, 7))
    output = client.download(finished)
    assert output["label"] == label and output["appraisal"] == "unavailable" and output["tiebreak"] is None
    # (the scripted models are the real svm: its labels, in the photos' order)
    assert len(output["photos"]) == 20 and all(isinstance(label, int) for label in output["photos"])
    truth = [digit_pixels(1350 + i)[1] for i in range(20)]
    assert sum(a == b for a, b in zip(output["photos"], truth, strict=True)) >= 18
    # And the execution's history stayed within the bound the validation computed
    sfn = stack.client("stepfunctions")
    machine = next(m for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith("-insurer"))
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]]
    history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
    assert len(history["events"]) <= plan.history_events(insurer)
