"""The client's configuration (environment, profiles, `make local`'s ready file), its webhook
verification, its progress display and the commands' exit codes for what needs no API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from chorus_client import Prediction, WebhookVerificationError, verify_webhook
from chorus_client.cli import main
from chorus_client.config import ConfigError, resolve
from chorus_client.progress import Progress

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def profile_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {"CHORUS_CONFIG_FILE": str(path)}


# --- configuration ------------------------------------------------------------------------------------


def test_the_environment_names_the_api_and_the_token(tmp_path):
    env = {**profile_file(tmp_path, ""), "CHORUS_API_URL": "https://a/v1", "CHORUS_API_TOKEN": "chr_e"}
    found = resolve(env=env)
    assert (found.url, found.token, found.source) == ("https://a/v1", "chr_e", "the environment")


def test_the_default_profile_is_used_when_nothing_else_names_the_api(tmp_path):
    env = profile_file(tmp_path, '[default]\napi_url = "https://d/v1"\napi_token = "chr_d"\n')
    assert (resolve(env=env).url, resolve(env=env).token) == ("https://d/v1", "chr_d")


def test_a_named_profile_beats_the_environment_and_the_environment_beats_the_default(tmp_path):
    env = {
        **profile_file(
            tmp_path,
            '[default]\napi_url = "https://d/v1"\napi_token = "chr_d"\n[staging]\napi_url = "https://s/v1"\n',
        ),
        "CHORUS_API_URL": "https://e/v1",
        "CHORUS_API_TOKEN": "chr_e",
    }
    staging = resolve(profile="staging", env=env)  # its URL; the token it lacks from the environment
    assert (staging.url, staging.token) == ("https://s/v1", "chr_e")
    assert "staging" in staging.source and "environment" in staging.source
    assert resolve(env=env).url == "https://e/v1"
    assert resolve(env={**env, "CHORUS_API_URL": ""}).url == "https://d/v1"


def test_chorus_profile_chooses_the_profile_and_must_exist(tmp_path):
    env = profile_file(tmp_path, '[prod]\napi_url = "https://p/v1"\napi_token = "chr_p"\n')
    assert resolve(env={**env, "CHORUS_PROFILE": "prod"}).url == "https://p/v1"
    with pytest.raises(ConfigError, match="no profile 'dev'"):
        resolve(env={**env, "CHORUS_PROFILE": "dev"})
    with pytest.raises(ConfigError, match="no profile 'dev'"):
        resolve(profile="dev", env=env)


def test_a_profile_with_an_unknown_key_is_refused(tmp_path):
    env = profile_file(tmp_path, '[default]\napi_url = "https://d/v1"\ntoken = "chr_d"\n')
    with pytest.raises(ConfigError, match="unknown keys token"):
        resolve(env=env)


def test_nothing_configured_says_what_to_set(tmp_path):
    with pytest.raises(ConfigError, match="CHORUS_API_URL and CHORUS_API_TOKEN"):
        resolve(env=profile_file(tmp_path, ""))


def test_local_reads_the_ready_file_of_make_local(tmp_path, monkeypatch):
    ready = tmp_path / ".chorus-local.json"
    ready.write_text(json.dumps({"api_url": "http://127.0.0.1:3000", "api_token": "chr_l", "webhook_secret": "x"}))
    assert resolve(use_local=True, local_file=ready).token == "chr_l"
    # found from a folder below it too
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    assert resolve(use_local=True).url == "http://127.0.0.1:3000"
    with pytest.raises(ConfigError, match="is `make local` running"):
        resolve(use_local=True, local_file=tmp_path / "nothing.json")


# --- exit codes of what needs no API --------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CHORUS_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.delenv("CHORUS_API_URL", raising=False)
    monkeypatch.delenv("CHORUS_API_TOKEN", raising=False)
    image = tmp_path / "digit.png"
    image.write_bytes(b"png")
    assert run(capsys, "predict", "digits-svm")[0] == 2  # no input
    code, _, err = run(capsys, "predict", "digits-svm", str(image), "--input", "{}")
    assert code == 2 and err == "chorus: error: give the input as a FILE or as --input JSON (one of them)\n"
    assert run(capsys, "predict", "digits-svm", "--input", "{not json")[0] == 2
    assert run(capsys, "predict", "digits-svm", str(tmp_path / "missing.png"))[0] == 2
    assert run(capsys, "predict", "digits-svm", "--input", "1", "--metadata", "novalue")[0] == 2
    assert run(capsys, "predict", "digits-svm", "--input", "1", "--deadline", "0")[0] == 2
    assert run(capsys, "list", "--limit", "5", "--all")[0] == 2
    code, out, err = run(capsys, "services")  # nothing configured
    assert code == 2 and out == "" and err.count("\n") == 1 and "CHORUS_API_URL" in err


# --- webhooks --------------------------------------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET, message_id: str = "msg_p1_completed") -> dict[str, str]:
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}


def body_of(status: str = "succeeded") -> bytes:
    document = {"id": "p1", "service": "digits-svm", "kind": "model", "status": status,
                "createdAt": "2026-11-22T03:10:07.000Z", "metadata": {}, "metrics": {}}  # fmt: skip
    return json.dumps(document).encode()


def test_a_signed_webhook_verifies_into_its_prediction():
    body = body_of()
    prediction = verify_webhook(SECRET, body, signed(body))
    assert isinstance(prediction, Prediction) and prediction.id == "p1"


def test_a_rotation_period_header_with_two_signatures_verifies_with_either_secret():
    body, old = body_of(), "whsec_" + "b2xkLXNlY3JldC1vZi10aGUtdGVuYW50"
    header = f"{signed(body)['webhook-signature']} {signed(body, old)['webhook-signature']}"
    for secret in (SECRET, old):
        assert verify_webhook(secret, body, {**signed(body), "webhook-signature": header}).id == "p1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: {**h, "webhook-signature": "v1,AAAA"},
        lambda h: {**h, "webhook-signature": "garbage"},
        lambda h: {**h, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()) - 3600)},
        lambda h: {k: v for k, v in h.items() if k != "webhook-id"},
    ],
    ids=["wrong signature", "malformed signature", "an hour old", "no webhook-id"],
)
def test_a_webhook_that_does_not_verify_is_refused(tamper):
    body = body_of()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, body, tamper(signed(body)))


def test_webhooks_verify_exits_0_for_a_good_body_and_1_for_a_changed_one(capsys, monkeypatch, tmp_path):
    body = body_of()
    headers = signed(body)
    options = ["--secret", SECRET, "--id", headers["webhook-id"], "--timestamp", headers["webhook-timestamp"],
               "--signature", headers["webhook-signature"]]  # fmt: skip
    (tmp_path / "body").write_bytes(body)
    code, out, _ = run(capsys, "webhooks", "verify", *options, "--body", str(tmp_path / "body"))
    assert code == 0 and out == "verified msg_p1_completed: prediction p1 succeeded\n"
    (tmp_path / "body").write_bytes(body_of("failed"))
    code, out, err = run(capsys, "webhooks", "verify", *options, "--body", str(tmp_path / "body"))
    assert code == 1 and out == "" and err.startswith("chorus: error: ") and err.count("\n") == 1


# --- progress ---------------------------------------------------------------------------------------------


def ensemble(status: str, *steps: tuple[str, str]) -> Prediction:
    def step(name: str, step_status: str) -> dict[str, Any]:
        timing = {"durationSeconds": 0.12} if step_status == "succeeded" else {}
        return {"name": name, "kind": "model", "service": f"digits-{name}", "status": step_status, **timing}

    return Prediction.model_validate(
        {
            "id": "e1",
            "service": "digits-ensemble",
            "kind": "ensemble",
            "status": status,
            "createdAt": "2026-11-22T03:10:07.000Z",
            "metrics": {"totalSeconds": 0.8} if status == "succeeded" else {},
            "steps": [step(name, step_status) for name, step_status in steps],
        }
    )


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def run_progress(stream: Any) -> None:
    with Progress(stream) as progress:
        progress.update(ensemble("queued", ("svm", "pending"), ("forest", "pending")))
        progress.update(ensemble("running", ("svm", "running"), ("forest", "running")))
        progress.update(ensemble("running", ("svm", "succeeded"), ("forest", "running")))
        progress.update(ensemble("succeeded", ("svm", "succeeded"), ("forest", "succeeded")))


def test_piped_progress_is_one_plain_line_per_change():
    stream = io.StringIO()
    run_progress(stream)
    assert stream.getvalue().splitlines() == [
        "prediction e1 (digits-ensemble): queued",
        "running",
        "step svm (digits-svm): succeeded in 0.12 s",
        "step forest (digits-forest): succeeded in 0.12 s",
        "succeeded in 0.80 s",
    ]


def test_terminal_progress_redraws_a_live_line_and_keeps_each_finished_step():
    stream = Terminal()
    run_progress(stream)
    text = stream.getvalue()
    kept = [line.rsplit("\x1b[2K", 1)[-1] for line in text.split("\n") if line]
    assert " digits-ensemble e1 running · 0/2 steps (svm, forest running) · " in text  # after a spinner frame
    assert kept[1:] == [
        "  ✓ step svm (digits-svm): succeeded in 0.12 s",
        "  ✓ step forest (digits-forest): succeeded in 0.12 s",
        "✓ succeeded in 0.80 s",
    ]
