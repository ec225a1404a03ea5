"""The webhook receivers of `examples/` (docs/webhooks.md), run as a user runs them, verifying real
signed webhooks from the local stack with the Standard Webhooks libraries (Python and Node.js)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.client import digit_pixels

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODE_PACKAGE = EXAMPLES / "node_modules" / "standardwebhooks" / "package.json"
START_SECONDS = 15.0
DELIVERY_SECONDS = 60.0


def node_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed: the Node.js receiver needs Node 18 or later"
    if not NODE_PACKAGE.is_file():
        return "the standardwebhooks npm package is not installed: run `npm ci --prefix examples`"
    return None


@dataclass
class RunningReceiver:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.read_text().splitlines() if line.strip()]

    def wait_for(self, prediction_id: str, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + DELIVERY_SECONDS
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if line["id"] == prediction_id and line["event"] == event]
            if found:
                return found[0]
            assert self.process.poll() is None, "the receiver exited"
            time.sleep(0.1)
        raise AssertionError(f"no verified {event!r} webhook for {prediction_id} within {DELIVERY_SECONDS:.0f} s")


def start_receiver(command: list[str], secret: str, workdir: Path) -> Iterator[RunningReceiver]:
    stdout, stderr = workdir / "stdout", workdir / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--port", "0"], stdout=out, stderr=err, env={**os.environ, "CHORUS_WEBHOOK_SECRET": secret}
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while "listening on" not in stderr.read_text():
            assert process.poll() is None, f"the receiver exited: {stderr.read_text()}"
            assert time.monotonic() < deadline, f"the receiver did not start: {stderr.read_text()}"
            time.sleep(0.05)
        url = stderr.read_text().split("listening on ", 1)[1].split()[0]
        yield RunningReceiver(process, url, stdout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


RECEIVERS = {
    "python": [sys.executable, str(EXAMPLES / "webhook_receiver.py")],
    "node": ["node", str(EXAMPLES / "webhook_receiver.mjs")],
}


@pytest.fixture(params=sorted(RECEIVERS))
def receiver(request, stack, tmp_path) -> Iterator[RunningReceiver]:
    if request.param == "node" and (reason := node_skip_reason()) is not None:
        pytest.skip(reason)
    yield from start_receiver(RECEIVERS[request.param], stack.webhook_secret, tmp_path)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_the_example_receiver_verifies_a_real_webhook_and_prints_the_prediction(stack, receiver):
    # Given the receiver holding the tenant's secret, and a prediction whose webhook points at it
    pixels, label = digit_pixels()
    created = stack.api().create(
        {
            "service": "digits-svm",
            "input": {"pixels": pixels},
            "callback": {"type": "webhook", "url": f"{receiver.url}webhooks", "events": ["start", "completed"]},
        }
    )
    # When the prediction finishes, Then the receiver verified both events and printed them
    started = receiver.wait_for(created["id"], "start")
    completed = receiver.wait_for(created["id"], "completed")
    assert started["webhookId"] == f"msg_{created['id']}_start"
    assert completed["status"] == "succeeded" and "url" in completed["output"]
    assert stack.api().download(stack.api().get(created["id"]))["label"] == label


def test_the_example_receiver_refuses_a_forged_or_altered_webhook(stack, receiver):
    # Given a body signed with another secret, one altered after signing, and one not signed
    body = json.dumps({"id": "forged", "status": "succeeded"})
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_forged_completed",
        "webhook-timestamp": str(int(now.timestamp())),
    }
    other = "whsec_" + "A" * 43 + "="
    forged = {**headers, "webhook-signature": Webhook(other).sign("msg_forged_completed", now, body)}
    genuine = {**headers, "webhook-signature": Webhook(stack.webhook_secret).sign("msg_forged_completed", now, body)}
    # When they are posted, Then both are refused and nothing is handled
    assert post(f"{receiver.url}webhooks", body.encode(), forged) == 400
    assert post(f"{receiver.url}webhooks", body.replace("succeeded", "failed").encode(), genuine) == 400
    assert post(f"{receiver.url}webhooks", body.encode(), {"content-type": "application/json"}) == 400
    assert receiver.lines() == []
