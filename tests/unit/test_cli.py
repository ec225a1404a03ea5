"""The `chorus` command: tenants and tokens through the product's own adapter, against a deployed
stack (CloudFormation names the tables, STS names the caller) or a `make local` ready file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.support.aws_resources import REPO, create_table, resource

STACK = "chorus-cli-test"
LOCAL_API = "a1b2c3d4e5"  # the REST API id a local stack's ready file names
TABLES = {"TenantsTable": "chorus-cli-tenants", "TokensTable": "chorus-cli-tokens", "AuditTable": "chorus-cli-audit"}
_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "TENANTS_TABLE",
    "TOKENS_TABLE",
    "AUDIT_TABLE",
    "REST_API_ID",
)


def _reset() -> None:
    from chorus.core import clients, settings

    settings.load.cache_clear()
    clients.reset_clients()
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every variable the CLI sets is restored afterwards (it writes os.environ directly)."""
    saved = dict(os.environ)
    for variable in _ENV:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _reset()
    yield
    os.environ.clear()
    os.environ.update(saved)
    _reset()


def create_tenancy_tables(names: dict[str, str] | None = None) -> dict[str, str]:
    """TenantsTable, TokensTable and AuditTable as template.yaml declares them."""
    names = names or TABLES
    for logical_id, name in names.items():
        create_table(logical_id, name)
    return names


@pytest.fixture
def deployed(clean_env: None) -> Iterator[str]:
    """A CloudFormation stack in moto holding the tenancy tables with template.yaml's properties, and
    a REST API (the stage tenants' usage plans apply to)."""
    from moto import mock_aws

    with mock_aws():
        body = {
            "Resources": {
                "ChorusApi": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "chorus-cli-test"}},
                **{
                    logical_id: {
                        "Type": "AWS::DynamoDB::Table",
                        "Properties": {
                            "TableName": name,
                            **{
                                key: value
                                for key, value in resource(logical_id).items()
                                if key in {"AttributeDefinitions", "KeySchema", "BillingMode"}
                            },
                        },
                    }
                    for logical_id, name in TABLES.items()
                },
            }
        }
        boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))
        yield STACK


@pytest.fixture
def local_stack(clean_env: None, tmp_path: Path) -> Iterator[Path]:
    """A moto server standing in for `make local`, and its ready file."""
    from moto.server import ThreadedMotoServer

    from tests.e2e.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's backends are process-wide: an earlier test's server (or mock) may have left these tables.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    try:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        _reset()
        create_tenancy_tables()
        del os.environ["AWS_ENDPOINT_URL"]
        ready = tmp_path / "ready.json"
        ready.write_text(
            json.dumps(
                {
                    "api_url": "http://127.0.0.1:1",
                    "aws_endpoint_url": endpoint,
                    "webhook_secret": "whsec_x",
                    "api_token": "",
                    "resources": {**TABLES, "PredictionsTable": "chorus-local-predictions", "ChorusApi": LOCAL_API},
                }
            )
        )
        yield ready
    finally:
        server.stop()


def chorus(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from chorus_cli.__main__ import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def at(stack: str) -> tuple[str, ...]:
    return ("--stack-name", stack)


def new_token(capsys: pytest.CaptureFixture[str], target: tuple[str, ...], *options: str) -> str:
    code, out, err = chorus(capsys, "admin", "tokens", "create", *options, *target)
    assert code == 0, err
    return out.rstrip("\n").splitlines()[-1]


# --- tenants ----------------------------------------------------------------------------------------


def test_tenants_are_created_and_listed_with_the_callers_identity(deployed, capsys):
    # Given a deployed stack
    # When two tenants are created
    assert chorus(capsys, "admin", "tenants", "create", "globex", *at(deployed))[0] == 0
    code, out, _ = chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    assert code == 0 and "acme" in out
    # Then both are listed, sorted, created by the caller's STS identity
    code, out, _ = chorus(capsys, "admin", "tenants", "list", "--json", *at(deployed))
    listed = json.loads(out)
    assert code == 0 and [t["tenant"] for t in listed] == ["acme", "globex"]
    assert {t["createdBy"] for t in listed} == {boto3.client("sts").get_caller_identity()["Arn"]}
    code, out, _ = chorus(capsys, "admin", "tenants", "list", *at(deployed))
    assert code == 0 and out.splitlines()[0].split()[0] == "TENANT" and "acme" in out and "globex" in out


def test_a_tenant_that_exists_already_is_a_one_line_failure(deployed, capsys):
    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    code, out, err = chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "already exists" in err


def test_allow_lists_are_set_on_create_replaced_on_update_and_listed_without_secrets(deployed, capsys):
    from chorus.adapters import tenants

    code, out, _ = chorus(
        capsys,
        "admin",
        "tenants",
        "create",
        "acme",
        "--email-recipients",
        "Claims@Acme.com",
        "@acme.org",
        "--webhook-hosts",
        "hooks.acme.com",
        "*.acme.io",
        *at(deployed),
    )
    assert code == 0 and "claims@acme.com @acme.org" in out and "hooks.acme.com *.acme.io" in out
    secret = tenants.find_tenant("acme").webhook_secret
    assert secret and secret.startswith("whsec_")
    # An update replaces only the lists it names; an empty list clears one
    code, out, _ = chorus(capsys, "admin", "tenants", "update", "acme", "--webhook-hosts", *at(deployed))
    assert code == 0 and "any public host" in out
    stored = tenants.find_tenant("acme")
    assert stored.email_recipients == ("claims@acme.com", "@acme.org") and stored.webhook_hosts == ()
    code, out, _ = chorus(capsys, "admin", "tenants", "list", "--json", *at(deployed))
    [listed] = json.loads(out)
    assert listed["emailRecipients"] == ["claims@acme.com", "@acme.org"] and listed["webhookHosts"] == []
    assert secret not in out and "webhookSecret" not in out
    code, out, _ = chorus(capsys, "admin", "tenants", "list", *at(deployed))
    assert code == 0 and "@acme.org" in out and secret not in out


def test_update_needs_something_to_update_and_an_existing_tenant(deployed, capsys):
    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    assert chorus(capsys, "admin", "tenants", "update", "acme", *at(deployed))[0] == 1
    code, _, err = chorus(capsys, "admin", "tenants", "update", "nobody", "--email-recipients", "@x.com", *at(deployed))
    assert code == 1 and "does not exist" in err
    assert chorus(capsys, "admin", "tenants", "update", "acme", "--email-recipients", "x", *at(deployed))[0] == 2


def test_rotate_secret_prints_the_new_secret_last_and_keeps_the_old_one_for_a_day(deployed, capsys):
    from chorus.adapters import tenants

    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    old = tenants.find_tenant("acme").webhook_secret
    code, out, _ = chorus(capsys, "admin", "tenants", "rotate-secret", "acme", *at(deployed))
    new = out.rstrip("\n").splitlines()[-1]
    stored = tenants.find_tenant("acme")
    assert code == 0 and new.startswith("whsec_") and new == stored.webhook_secret != old
    assert stored.previous_webhook_secret == old


def test_audit_lists_who_did_what_to_a_tenant(deployed, capsys):
    chorus(capsys, "admin", "tenants", "create", "acme", "--email-recipients", "@acme.com", *at(deployed))
    token = chorus(capsys, "admin", "tokens", "create", "--tenant", "acme", *at(deployed))[1].splitlines()[-1]
    chorus(capsys, "admin", "tokens", "revoke", token, *at(deployed))
    chorus(capsys, "admin", "tenants", "rotate-secret", "acme", *at(deployed))
    code, out, _ = chorus(capsys, "admin", "audit", "--tenant", "acme", "--json", *at(deployed))
    events = json.loads(out)
    identity = boto3.client("sts").get_caller_identity()["Arn"]
    assert code == 0
    assert [e["action"] for e in events] == [
        "tenant.created",
        "token.created",
        "token.revoked",
        "webhook_secret.rotated",
    ]
    assert {e["actor"] for e in events} == {identity}
    code, out, _ = chorus(capsys, "admin", "audit", "--tenant", "acme", *at(deployed))
    assert code == 0 and out.splitlines()[0].split()[:3] == ["AT", "ACTION", "BY"] and "token.revoked" in out
    assert "whsec_" not in out and token.split("_", 2)[2] not in out


# --- tokens -----------------------------------------------------------------------------------------


def test_a_created_token_is_the_last_line_shown_once_and_the_product_accepts_it(deployed, capsys):
    from chorus.adapters import tokens
    from chorus.core.clock import utcnow
    from chorus.model.tenancy import Scope, parse_token

    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    # When a token is created with the default scopes
    code, out, _ = chorus(capsys, "admin", "tokens", "create", "--tenant", "acme", *at(deployed))
    token = out.rstrip("\n").splitlines()[-1]
    # Then it is the last line, printed once, and the stored record accepts its secret
    parsed = parse_token(token)
    assert code == 0 and parsed is not None and out.count(token) == 1
    stored = tokens.find_token(parsed[0])
    assert stored is not None and stored.accepts(parsed[1], utcnow())
    assert set(stored.scopes) == {Scope.CREATE, Scope.READ} and stored.expires_at is None
    assert stored.created_by == boto3.client("sts").get_caller_identity()["Arn"]


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)), ("3600s", 3600)],
)
def test_a_token_can_expire(deployed, capsys, expires_in, lifetime):
    from chorus.adapters import tokens
    from chorus.core.clock import utcnow

    lifetime = lifetime if isinstance(lifetime, timedelta) else timedelta(seconds=lifetime)
    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    token = new_token(capsys, at(deployed), "--tenant", "acme", "--expires-in", expires_in)
    stored = tokens.find_token(token[4:16])
    assert stored is not None and stored.expires_at is not None
    assert abs(stored.expires_at - (utcnow() + lifetime)) < timedelta(seconds=30)


def test_scopes_are_those_asked_for(deployed, capsys):
    from chorus.adapters import tokens

    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    token = new_token(capsys, at(deployed), "--tenant", "acme", "--scopes", "predictions:read", "admin")
    stored = tokens.find_token(token[4:16])
    assert stored is not None and list(stored.scopes) == ["predictions:read", "admin"]


def test_a_token_for_an_unknown_tenant_is_a_failure(deployed, capsys):
    code, out, err = chorus(capsys, "admin", "tokens", "create", "--tenant", "nobody", *at(deployed))
    assert code == 1 and out == "" and "does not exist" in err and err.count("\n") == 1


def test_tokens_are_listed_without_secrets_or_hashes(deployed, capsys):
    from chorus.adapters import tokens

    for name in ("acme", "globex"):
        chorus(capsys, "admin", "tenants", "create", name, *at(deployed))
    acme = new_token(capsys, at(deployed), "--tenant", "acme")
    globex = new_token(capsys, at(deployed), "--tenant", "globex", "--expires-in", "1d")
    hashes = [t.secret_hash for t in tokens.list_tokens()]
    # When they are listed, as text and as JSON, all or one tenant's
    code, text, _ = chorus(capsys, "admin", "tokens", "list", *at(deployed))
    assert code == 0
    code, everything, _ = chorus(capsys, "admin", "tokens", "list", "--json", *at(deployed))
    assert code == 0
    code, only_acme, _ = chorus(capsys, "admin", "tokens", "list", "--tenant", "acme", "--json", *at(deployed))
    assert code == 0
    # Then ids, tenants and states show, and nothing of any secret
    for output in (text, everything, only_acme):
        for secret in (acme, globex, acme[17:], globex[17:], *hashes):
            assert secret not in output
    assert acme[4:16] in text and globex[4:16] in text and "active" in text
    listed = json.loads(everything)
    assert {t["tokenId"] for t in listed} == {acme[4:16], globex[4:16]}
    assert all("secretHash" not in t and t["state"] == "active" for t in listed)
    assert [t["tenant"] for t in json.loads(only_acme)] == ["acme"]


def test_a_revoked_token_is_refused_by_the_product_and_listed_as_revoked(deployed, capsys):
    from chorus.adapters import tokens
    from chorus.core.clock import utcnow

    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    token = new_token(capsys, at(deployed), "--tenant", "acme")
    # When it is revoked by its id
    code, out, _ = chorus(capsys, "admin", "tokens", "revoke", token[4:16], *at(deployed))
    # Then the product no longer accepts it, and the listing says so
    assert code == 0 and "revoked" in out and token not in out
    stored = tokens.find_token(token[4:16])
    assert stored is not None and stored.revoked and not stored.accepts(token[17:], utcnow())
    listed = json.loads(chorus(capsys, "admin", "tokens", "list", "--json", *at(deployed))[1])
    assert listed[0]["state"] == "revoked" and listed[0]["revokedAt"]
    # And revoking by the whole token works as well (its id is taken from it)
    assert chorus(capsys, "admin", "tokens", "revoke", token, *at(deployed))[0] == 0


def test_revoking_an_unknown_token_is_a_failure(deployed, capsys):
    code, _, err = chorus(capsys, "admin", "tokens", "revoke", "0123456789ab", *at(deployed))
    assert code == 1 and "not found" in err and err.count("\n") == 1


def test_an_unknown_stack_is_a_one_line_failure(deployed, capsys):
    code, out, err = chorus(capsys, "admin", "tenants", "list", "--stack-name", "no-such-stack")
    assert code == 1 and out == "" and err.startswith("chorus: error: ") and err.count("\n") == 1


# --- limits ---------------------------------------------------------------------------------------


def test_limits_are_set_on_create_changed_on_update_and_listed(deployed, capsys):
    from chorus.adapters import tenants

    api_id = boto3.client("cloudformation").describe_stack_resource(StackName=deployed, LogicalResourceId="ChorusApi")
    api_id = api_id["StackResourceDetail"]["PhysicalResourceId"]
    # When a tenant is created with limits, and another without
    code, out, _ = chorus(
        capsys, "admin", "tenants", "create", "acme", "--rate-limit", "2", "--burst", "4", "--daily-quota", "1000",
        *at(deployed),
    )  # fmt: skip
    assert code == 0 and "limits: 2 requests/s, burst 4, 1000 a day" in out
    assert chorus(capsys, "admin", "tenants", "create", "globex", *at(deployed))[0] == 0
    # Then each has a usage plan on the stack's REST API stage v1
    acme = tenants.require_tenant("acme")
    plan = boto3.client("apigateway").get_usage_plan(usagePlanId=acme.usage_plan_id)
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "v1"}]
    assert (plan["throttle"], plan["quota"]) == ({"rateLimit": 2.0, "burstLimit": 4}, {"limit": 1000, "period": "DAY"})
    # And an update changes only what it names; --daily-quota 0 removes the quota
    code, out, _ = chorus(
        capsys, "admin", "tenants", "update", "acme", "--burst", "8", "--daily-quota", "0", *at(deployed)
    )
    assert code == 0 and "limits: 2 requests/s, burst 8, no daily quota" in out and "not at once" in out
    # And the listing shows them, the defaults for globex, never the key
    code, out, _ = chorus(capsys, "admin", "tenants", "list", "--json", *at(deployed))
    listed = {t["tenant"]: t for t in json.loads(out)}
    assert listed["acme"]["limits"] == {"rateLimit": 2, "burstLimit": 8, "dailyQuota": None}
    assert listed["globex"]["limits"] == {"rateLimit": 10, "burstLimit": 20, "dailyQuota": None}
    assert "apiKey" not in listed["acme"] and acme.api_key not in out
    code, out, _ = chorus(capsys, "admin", "tenants", "list", *at(deployed))
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TENANT", "RATE/S", "BURST", "DAILY"]
    assert rows[0].split()[:4] == ["acme", "2", "8", "none"] and rows[1].split()[:4] == ["globex", "10", "20", "none"]


def test_a_token_made_by_the_cli_names_its_tenants_usage_plan_and_its_listing_does_not(deployed, capsys):
    from chorus.adapters import tenants, tokens

    chorus(capsys, "admin", "tenants", "create", "acme", *at(deployed))
    token = new_token(capsys, at(deployed), "--tenant", "acme")
    stored = tokens.find_token(token[4:16])
    assert stored is not None and stored.usage_key == tenants.require_tenant("acme").api_key
    code, out, _ = chorus(capsys, "admin", "tokens", "list", "--json", *at(deployed))
    assert code == 0 and "usageKey" not in out and stored.usage_key not in out


# --- usage errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["admin", "tenants", "list"],  # no target
        ["admin", "tenants", "list", "--stack-name", STACK, "--local", "x.json"],  # two targets
        ["admin", "tenants", "create", "Acme!", "--stack-name", STACK],
        ["admin", "tokens", "create", "--tenant", "acme", "--expires-in", "soon", "--stack-name", STACK],
        ["admin", "tokens", "create", "--tenant", "acme", "--expires-in", "0h", "--stack-name", STACK],
        ["admin", "tokens", "create", "--tenant", "acme", "--scopes", "everything", "--stack-name", STACK],
        ["admin", "tokens", "create", "--stack-name", STACK],  # no tenant
        ["admin", "tokens", "revoke", "not-an-id", "--stack-name", STACK],
        ["admin", "tokens", "list", "--local", "x.json", "--region", "eu-west-1"],
        ["admin"],
        ["admin", "tenants", "delete", "acme", "--stack-name", STACK],
        ["admin", "tenants", "create", "acme", "--rate-limit", "0", "--stack-name", STACK],
        ["admin", "tenants", "create", "acme", "--rate-limit", "fast", "--stack-name", STACK],
        ["admin", "tenants", "create", "acme", "--burst", "2.5", "--stack-name", STACK],
        ["admin", "tenants", "create", "acme", "--burst", "5001", "--stack-name", STACK],
        ["admin", "tenants", "update", "acme", "--daily-quota", "-1", "--stack-name", STACK],
    ],
)
def test_usage_errors_exit_2(clean_env, capsys, argv):
    code, out, err = chorus(capsys, *argv)
    assert code == 2 and out == "" and "error:" in err


# --- make local -------------------------------------------------------------------------------------


def test_local_stack_through_its_ready_file(local_stack, capsys):
    from chorus.adapters import tokens

    target = ("--local", str(local_stack))
    # Given a running local stack; when a tenant and a token are created through its ready file
    assert chorus(capsys, "admin", "tenants", "create", "acme", *target)[0] == 0
    token = new_token(capsys, target, "--tenant", "acme", "--expires-in", "1s")
    # Then they are stored in its tables, created by "local"
    assert os.environ["TENANTS_TABLE"] == TABLES["TenantsTable"]
    listed = json.loads(chorus(capsys, "admin", "tenants", "list", "--json", *target)[1])
    assert [(t["tenant"], t["createdBy"]) for t in listed] == [("acme", "local")]
    stored = tokens.find_token(token[4:16])
    assert stored is not None and stored.tenant == "acme" and stored.created_by == "local"
    assert chorus(capsys, "admin", "tokens", "revoke", token[4:16], *target)[0] == 0
    # And the tenant's usage plan is on the local REST API the ready file names
    assert os.environ["REST_API_ID"] == LOCAL_API
    plan_id = listed[0]["usagePlanId"]
    plan = boto3.client("apigateway", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).get_usage_plan(usagePlanId=plan_id)
    assert plan["apiStages"] == [{"apiId": LOCAL_API, "stage": "v1"}]


def test_a_missing_ready_file_is_a_failure_that_says_what_to_do(clean_env, capsys, tmp_path):
    code, _, err = chorus(capsys, "admin", "tenants", "list", "--local", str(tmp_path / "absent.json"))
    assert code == 1 and "make local" in err and err.count("\n") == 1


def test_a_ready_file_without_resources_is_a_failure(clean_env, capsys, tmp_path):
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"api_url": "http://127.0.0.1:1", "aws_endpoint_url": "http://127.0.0.1:1"}))
    code, _, err = chorus(capsys, "admin", "tenants", "list", "--local", str(ready))
    assert code == 1 and "resources" in err and err.count("\n") == 1


def test_local_defaults_to_the_ready_file_in_the_repository_root(clean_env):
    from chorus_cli.__main__ import build_parser

    args = build_parser().parse_args(["admin", "tenants", "list", "--local"])
    assert args.local == REPO / ".chorus-local.json"


# --- packaging --------------------------------------------------------------------------------------


def test_the_console_script_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["chorus"] == "chorus_cli.__main__:main"
    assert "build-system" in project


def test_the_cli_finds_the_layer_package_from_anywhere(tmp_path):
    # A fresh interpreter outside the repository, without pytest's pythonpath: only chorus_cli's own
    # sys.path entry makes `chorus` importable.
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)  # where chorus_cli is (pip install -e . does this for the script)
    probe = "import chorus_cli, chorus.adapters.tenants as t; print(t.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(REPO / "layers/chorus/chorus/adapters/tenants.py")
    usage = subprocess.run(
        [sys.executable, "-m", "chorus_cli", "admin", "tokens", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "--stack-name" in usage.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["admin", "monitor", "run", "digits-svm", "--since", "yesterday", "--local"], "not an ISO 8601 time"),
        (["admin", "monitor", "baseline", "digits-svm", "--data", "/nonexistent.jsonl", "--local"], "is not a file"),
        (["admin", "monitor", "baseline", "digits-svm", "--local"], "--data"),
    ],
)
def test_monitor_usage_errors_exit_2(clean_env, capsys, argv, fragment):
    code, _, err = chorus(capsys, *argv)
    assert code == 2 and fragment in err


def test_monitor_against_a_stack_without_monitoring_is_a_failure(local_stack, capsys):
    # The ready file of a stack from before drift monitoring: tenants work, monitor says why it cannot
    code, _, err = chorus(capsys, "admin", "monitor", "run", "digits-svm", "--local", str(local_stack))
    assert code == 1 and "has no PayloadsBucket or MonitorFunction" in err and err.count("\n") == 1


def test_monitor_times_without_a_zone_are_utc() -> None:
    from chorus_cli.monitor import moment

    assert moment("2026-12-03T12:00").isoformat() == "2026-12-03T12:00:00+00:00"
    assert moment("2026-12-03T12:00Z").isoformat() == "2026-12-03T12:00:00+00:00"
    assert moment("2026-12-03T13:00+01:00").utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
