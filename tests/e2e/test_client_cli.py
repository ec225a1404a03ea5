"""The `chorus` command end to end: the installed console script (`.venv/bin/chorus`, a subprocess)
against the session's local stack, through the client package (client/chorus_client).

Most commands use `--local <the stack's ready file>` (tenant `local`); the listing and the 429 use a
tenant of their own, made with `chorus admin`, configured through CHORUS_API_URL and
CHORUS_API_TOKEN as a user's shell would. Standard error is a pipe here, so progress comes as
plain lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import digit_pixels, digit_png
from tests.e2e.conftest import REPO_ROOT, RunningStack
from tests.e2e.test_tenancy import chorus as admin
from tests.e2e.test_tenancy import new_token
from tests.support.webhook_receiver import WebhookReceiver

CHORUS = Path(sys.executable).with_name("chorus")
EXIT_FAILED, EXIT_USAGE, EXIT_API_ERROR, EXIT_PREDICTION_FAILED = 1, 2, 3, 4


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def chorus(*argv: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 90) -> Run:
    """The console script, with nothing of the developer's own configuration."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    base["CHORUS_CONFIG_FILE"] = "/nonexistent/chorus/config.toml"
    result = subprocess.run(
        [str(CHORUS), *argv], capture_output=True, input=stdin, env={**base, **(env or {})}, timeout=timeout
    )
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


@pytest.fixture(scope="module")
def local(stack: RunningStack) -> tuple[str, str]:
    return ("--local", str(stack.ready_file))


def tenant_env(stack: RunningStack, prefix: str, *limits: str) -> dict[str, str]:
    """A new tenant (made with `chorus admin`) and the environment that points the CLI at it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin(stack, "tenants", "create", name, *limits)
    return {"CHORUS_API_URL": stack.api_url, "CHORUS_API_TOKEN": new_token(stack, name)}


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, int]:
    data, label = digit_png(1300)
    path = tmp_path / "digit.png"
    path.write_bytes(data)
    return path, label


def pixels(index: int = 1300) -> tuple[str, int]:
    values, label = digit_pixels(index)
    return json.dumps({"pixels": values}), label


# --- predict ------------------------------------------------------------------------------------------


def test_predict_uploads_an_image_waits_and_prints_its_label(local, image):
    path, label = image
    run = chorus("predict", "digits-svm", str(path), "--wait", *local)
    assert run.code == 0, run.err
    assert json.loads(run.out)["label"] == label
    lines = run.err.splitlines()
    assert lines[0].startswith("prediction ") and "(digits-svm): awaiting_input" in lines[0]
    assert lines[-1].startswith("succeeded in ")


def test_predict_inline_input_waits_and_answers_the_prediction_as_json(local):
    body, label = pixels()
    run = chorus("predict", "digits-forest", "--input", body, "--wait", "--json", "--metadata", "run=cli", *local)
    assert run.code == 0, run.err
    prediction = run.json()
    assert prediction["status"] == "succeeded" and prediction["metadata"] == {"run": "cli"}
    assert prediction["output"]["contentType"] == "application/json"
    # And the output is there for `download`, to standard output or to a file
    downloaded = chorus("download", prediction["id"], *local)
    assert downloaded.code == 0 and json.loads(downloaded.out)["label"] == label


def test_an_ensemble_shows_each_step_as_it_finishes(local):
    body, label = pixels(1400)
    run = chorus("predict", "digits-ensemble", "--input", body, "--wait", *local)
    assert run.code == 0, run.err
    assert json.loads(run.out)["label"] == label
    steps = [line for line in run.err.splitlines() if line.startswith("step ")]
    assert sorted(s.split(":")[0] for s in steps) == [
        "step forest (digits-forest)",
        "step stacker (digits-stacker)",
        "step svm (digits-svm)",
    ]
    assert all(": succeeded in " in s for s in steps) and steps[-1].startswith("step stacker")
    assert run.err.splitlines()[-1].startswith("succeeded in ")


def test_without_wait_predict_prints_the_id_and_watch_follows_it(local):
    body, _ = pixels()
    created = chorus("predict", "digits-svm", "--input", body, *local)
    assert created.code == 0, created.err
    prediction_id = created.out.strip()
    watched = chorus("watch", prediction_id, *local)
    assert watched.code == 0 and watched.out == f"{prediction_id} succeeded\n"
    shown = chorus("get", prediction_id, *local)
    assert shown.code == 0 and "status     succeeded" in shown.out and "chorus download" in shown.out


def test_get_shows_an_ensembles_steps(local):
    body, _ = pixels()
    prediction = chorus("predict", "digits-ensemble", "--input", body, "--wait", "--json", "-q", *local).json()
    shown = chorus("get", prediction["id"], *local)
    assert shown.code == 0
    assert [line.split(":")[0].strip() for line in shown.out.split("steps\n")[1].splitlines()] == [
        "svm (digits-svm)",
        "forest (digits-forest)",
        "stacker (digits-stacker)",
    ]


def test_a_failed_prediction_exits_4_with_its_error_in_one_line(local):
    run = chorus("predict", "digits-svm", "--input", '{"pixels": [1, 2, 3]}', "--wait", "--quiet", *local)
    assert run.code == EXIT_PREDICTION_FAILED and run.out == ""
    [line] = run.err.splitlines()
    assert line.startswith("chorus: error: prediction ") and " failed: model_error: " in line and "64" in line
    # and downloading its output says the same
    prediction_id = line.split()[3]
    assert chorus("download", prediction_id, *local).code == EXIT_PREDICTION_FAILED


def test_an_api_error_exits_3_repeating_its_code_and_message(local):
    run = chorus("predict", "no-such-service", "--input", "{}", *local)
    assert run.code == EXIT_API_ERROR and run.out == ""
    assert run.err.startswith("chorus: error: unknown_service: ") and run.err.count("\n") == 1
    assert chorus("get", "0" * 32, *local).code == EXIT_API_ERROR


# --- list, cancel, download -------------------------------------------------------------------------


def test_list_pages_and_filters_a_tenants_predictions(stack):
    env = tenant_env(stack, "cli-list", "--rate-limit", "100", "--burst", "100")
    body, _ = pixels()
    for service in ("digits-svm", "digits-svm", "digits-forest"):
        assert chorus("predict", service, "--input", body, env=env).code == 0
    listed = chorus("list", "--json", env=env).json()
    assert [p["service"] for p in listed["predictions"]] == ["digits-forest", "digits-svm", "digits-svm"]
    assert listed["nextCursor"] is None
    only_svm = chorus("list", "--service", "digits-svm", "--json", env=env).json()["predictions"]
    assert [p["service"] for p in only_svm] == ["digits-svm", "digits-svm"]
    first = chorus("list", "--limit", "2", "--json", env=env).json()
    assert len(first["predictions"]) == 2 and first["nextCursor"]
    rest = chorus("list", "--cursor", first["nextCursor"], "--json", env=env).json()["predictions"]
    assert [p["id"] for p in first["predictions"] + rest] == [p["id"] for p in listed["predictions"]]
    table = chorus("list", "--all", env=env)
    assert table.code == 0 and table.out.split()[:5] == ["ID", "SERVICE", "STATUS", "CREATED", "TOTAL"]
    assert len(table.out.splitlines()) == 4


def test_cancel_cancels_and_a_finished_prediction_is_not_cancelable(stack, local):
    awaiting = stack.api().create({"service": "digits-forest", "contentType": "image/png"})  # no upload: waits
    run = chorus("cancel", awaiting["id"], *local)
    assert run.code == 0 and run.out == f"{awaiting['id']} canceled\n"
    body, _ = pixels()
    finished = chorus("predict", "digits-svm", "--input", body, "--wait", "--json", "-q", *local).json()
    refused = chorus("cancel", finished["id"], *local)
    assert refused.code == EXIT_API_ERROR and refused.err.startswith("chorus: error: not_cancelable: ")


def test_download_saves_the_output_to_a_file(local, image, tmp_path):
    path, label = image
    prediction = chorus("predict", "digits-svm", str(path), "--wait", "--json", "-q", *local).json()
    saved = chorus("download", prediction["id"], "-o", str(tmp_path / "out.json"), *local)
    assert saved.code == 0 and "saved the output" in saved.err
    assert json.loads((tmp_path / "out.json").read_text())["label"] == label
    described = chorus("download", prediction["id"], "--json", *local).json()
    assert described["contentType"] == "application/json" and described["url"].startswith("http://127.0.0.1:")


def test_services_lists_the_registry(local):
    run = chorus("services", "--json", *local)
    names = {s["name"] for s in run.json()["services"]}
    assert run.code == 0 and {"digits-svm", "digits-forest", "digits-ensemble"} <= names


# --- webhooks -----------------------------------------------------------------------------------------


def test_a_received_webhook_verifies_and_a_changed_one_does_not(stack, local):
    receiver = WebhookReceiver()
    try:
        body, _ = pixels()
        run = chorus("predict", "digits-svm", "--input", body, "--webhook", receiver.url, "--wait", "-q", *local)
        assert run.code == 0, run.err
        deadline = time.monotonic() + 30
        while not receiver.received:
            assert time.monotonic() < deadline, "no webhook came"
            time.sleep(0.1)
        [webhook] = receiver.received
    finally:
        receiver.close()
    headers = webhook.headers
    options = ["--id", headers["webhook-id"], "--timestamp", headers["webhook-timestamp"]]
    options += ["--signature", headers["webhook-signature"]]
    secret = chorus("webhooks", "secret", *local)
    assert secret.code == 0 and secret.out.strip() == stack.webhook_secret
    # With the secret given, and fetched from the API
    given = chorus("webhooks", "verify", "--secret", stack.webhook_secret, *options, stdin=webhook.body)
    assert given.code == 0 and given.out.startswith(f"verified {headers['webhook-id']}: prediction ")
    fetched = chorus("webhooks", "verify", *options, "--json", *local, stdin=webhook.body)
    assert fetched.code == 0 and fetched.json() == json.loads(webhook.body)
    # A changed body does not verify
    changed = webhook.body.replace(b'"succeeded"', b'"failed"')
    refused = chorus("webhooks", "verify", "--secret", stack.webhook_secret, *options, stdin=changed)
    assert refused.code == EXIT_FAILED and refused.out == "" and refused.err.startswith("chorus: error: ")


# --- limits -------------------------------------------------------------------------------------------


def test_a_429_is_retried_after_retry_after_and_the_prediction_still_answers(stack, image):
    # Given a tenant allowed one request every two seconds (bursts of 1)
    env = tenant_env(stack, "cli-slow", "--rate-limit", "0.5", "--burst", "1")
    path, label = image
    # When it predicts an image: the create takes the one request, the first poll comes right after
    run = chorus("predict", "digits-svm", str(path), "--wait", env=env)
    # Then the 429 was retried after the second Retry-After names, and the label came
    assert run.code == 0, run.err
    assert json.loads(run.out)["label"] == label
    assert "chorus: HTTP 429 rate_limited: retrying in 1.0 s (try 2 of 6)" in run.err.splitlines()


def test_no_configuration_is_a_usage_error():
    run = chorus("services")
    assert run.code == EXIT_USAGE and "CHORUS_API_URL" in run.err and run.err.count("\n") == 1


# --- the README and the examples ----------------------------------------------------------------------


def test_the_readme_quick_start_line_prints_the_digits_label(stack):
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith(".venv/bin/chorus predict "))
    command = line.split("#")[0].split()
    assert command[-1] == "--local"  # which reads the repository's ready file: here the test stack's
    run = subprocess.run(
        [str(CHORUS), *command[1:], str(stack.ready_file)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["label"] == 1


@pytest.mark.parametrize(
    ("script", "expected"),
    [("predict_digit.py", "digit.png: 1 (p="), ("ensemble_steps.py", "step stacker: succeeded")],
)
def test_the_client_examples_run(stack, script, expected):
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script), "--local", str(stack.ready_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert expected in run.stdout
