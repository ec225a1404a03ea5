"""Model versions against moto: routing shares, evidence figures, registration, the approval links
(signed with a KMS HMAC key, single-use, expiring), decisions, canary judgement and the history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import boto3
import pytest

from chorus.adapters import trial_evidence as evidence_store
from chorus.adapters import versions as store
from chorus.core.errors import InvalidRequest, ServiceNotFound
from chorus.domain import approval_links, promotion, trials, versions
from chorus.model.records import Status
from chorus.model.registry import EndpointDeclaration
from chorus.model.versions import (
    Arm,
    EvidenceRow,
    Outcome,
    Routing,
    VersionStatus,
    canary_fails,
    route,
    share,
    summarize,
)

SVM = EndpointDeclaration(name="digits-svm", mode="sync")
FOREST = EndpointDeclaration(name="digits-forest", mode="async")
BASE = "https://api.example.com/v1"


# --- routing and evidence (no I/O) ------------------------------------------------------------------


def test_a_share_is_stable_per_prediction_and_spread_evenly():
    ids = [f"{i:032x}" for i in range(4000)]
    assert [share(i) for i in ids[:50]] == [share(i) for i in ids[:50]]
    below = sum(share(i) < 30 for i in ids) / len(ids)
    assert 0.27 < below < 0.33


def test_routing_serves_live_shadows_a_share_and_splits_a_canary():
    live, candidate = Arm(version="v1", endpoint=SVM), Arm(version="v2", endpoint=FOREST)
    ids = [f"{i:032x}" for i in range(2000)]
    assert {route(Routing(live=live), i).serving.version for i in ids} == {"v1"}

    shadowed = [route(Routing(live=live, candidate=candidate, shadow_percent=25), i) for i in ids]
    assert {r.serving.version for r in shadowed} == {"v1"}
    with_shadow = [r for r in shadowed if r.shadow is not None]
    assert 0.21 < len(with_shadow) / len(ids) < 0.29
    assert all(r.trial and r.trial.mode == "shadow" and r.trial.side == "live" for r in with_shadow)
    assert all(r.trial is None for r in shadowed if r.shadow is None)

    canary = [route(Routing(live=live, candidate=candidate, canary_percent=10), i) for i in ids]
    on_candidate = [r for r in canary if r.serving.version == "v2"]
    assert 0.07 < len(on_candidate) / len(ids) < 0.13
    assert all(r.trial is not None and r.shadow is None for r in canary)  # every canary-time prediction counts


def _row(i: int, live: Outcome | None, candidate: Outcome | None, mode: str = "shadow") -> EvidenceRow:
    return EvidenceRow(prediction_id=f"p{i}", mode=mode, live=live, candidate=candidate)  # type: ignore[arg-type]


def test_shadow_evidence_compares_only_predictions_both_versions_answered():
    ok = Outcome(succeeded=True, seconds=0.1, label="3")
    rows = [
        _row(1, ok, Outcome(succeeded=True, seconds=0.3, label="3")),
        _row(2, ok, Outcome(succeeded=True, seconds=0.5, label="8")),
        _row(3, ok, Outcome(succeeded=False, seconds=0.2)),
        _row(4, ok, None),  # the shadow has not finished: left out of both sides
        _row(5, None, Outcome(succeeded=True, seconds=0.4, label="1")),
    ]
    evidence = summarize("shadow", rows)
    assert (evidence.live.runs, evidence.candidate.runs) == (3, 3)
    assert evidence.candidate.failures == 1 and evidence.candidate.failure_rate == pytest.approx(0.3333, abs=1e-4)
    assert evidence.live.p50_ms == pytest.approx(100.0) and evidence.candidate.p50_ms == pytest.approx(400.0)
    assert (evidence.compared, evidence.agreed, evidence.agreement_rate) == (2, 1, 0.5)


def test_a_canary_fails_only_beyond_the_margin_over_the_live_failure_rate():
    good, bad = Outcome(succeeded=True, seconds=0.1), Outcome(succeeded=False)
    live = [_row(i, good if i % 10 else bad, None, "canary") for i in range(100)]  # 10 % failing
    canary = [_row(100 + i, None, good if i % 7 else bad, "canary") for i in range(21)]  # 3 of 21 = 14.3 %
    evidence = summarize("canary", live + canary)
    assert evidence.live.failure_rate == pytest.approx(0.1)
    assert canary_fails(evidence, 0.03) and not canary_fails(evidence, 0.05)
    assert not canary_fails(summarize("canary", live), 0.0)  # a canary that served nothing showed no failure


# --- registering ----------------------------------------------------------------------------------


@pytest.fixture
def workflow(aws, monkeypatch):
    """The approval state machine in moto (not executed: each test plays the workflow's tasks)."""
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(
        name="chorus-test-approval",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("APPROVAL_STATE_MACHINE_ARN", arn)
    from chorus.core import settings

    settings.load.cache_clear()
    return arn


def register(**options):
    defaults = {"registered_by": "alice@example.com", "description": "forest behind svm"}
    return versions.register("digits-svm", FOREST, **(defaults | options))


def test_registering_stores_v1_and_a_pending_candidate_and_starts_its_approval(workflow):
    version = register(shadow_percent=20)
    assert version.id == "v2" and version.status is VersionStatus.PENDING
    stored = store.list_versions("digits-svm")
    assert [(v.id, v.status) for v in stored] == [("v1", VersionStatus.LIVE), ("v2", VersionStatus.PENDING)]
    assert stored[0].endpoint == SVM
    routing = store.fresh_routing("digits-svm")
    assert routing is not None and routing.live.version == "v1"
    assert routing.candidate is not None and routing.candidate.endpoint == FOREST and routing.shadow_percent == 20
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=workflow)["executions"]
    assert [e["name"] for e in executions] == ["digits-svm-v2"]
    started = boto3.client("stepfunctions").describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(started["input"]) == {
        "service": "digits-svm",
        "version": "v2",
        "approvalTimeoutSeconds": 72 * 3600,
        "canaryPercent": 0,
        "bakeSeconds": 0,
    }
    assert [e["event"] for e in evidence_store.history("digits-svm")] == ["registered", "shadowing"]


def test_one_candidate_at_a_time_and_only_for_model_services(workflow):
    register()
    with pytest.raises(versions.VersionInFlight, match="v2 is still awaiting"):
        register()
    with pytest.raises(InvalidRequest, match="ensemble"):
        versions.register("digits-ensemble", FOREST, registered_by="alice")
    with pytest.raises(ServiceNotFound):
        versions.register("no-such-model", FOREST, registered_by="alice")
    with pytest.raises(InvalidRequest, match="bake"):
        versions.register("digits-forest", SVM, registered_by="alice", canary_percent=10)


def test_a_service_with_no_registered_version_is_served_by_its_registry_endpoint(aws):
    from chorus.model.registry import get_registry

    served = trials.route_for(get_registry().get("digits-svm"), "0" * 32)
    assert served.serving == Arm(version="v1", endpoint=SVM) and served.shadow is None


# --- links and decisions ----------------------------------------------------------------------------


def _links() -> dict[str, str]:
    """The decision links of the latest approval e-mail moto's SES accepted."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    message = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages[-1]
    found = {}
    for word in str(message.body).split('"'):
        if "/approvals/" in word:
            found["approve" if "approve" in str(approval_links._claim(_token(word)).decision) else "reject"] = word
    return found


def _token(link: str) -> str:
    return unquote(link.rsplit("/approvals/", 1)[1])


def requested(**options):
    version = register(**options)
    promotion.request_approval("digits-svm", version.id, "token-of-the-waiting-task", BASE)
    return version


def test_the_approval_email_links_open_a_confirmation_that_changes_nothing(workflow):
    requested(shadow_percent=50)
    links = _links()
    assert set(links) == {"approve", "reject"} and all(link.startswith(f"{BASE}/approvals/") for link in links.values())
    for _ in range(2):
        state = approval_links.open_link(_token(links["approve"]))
        assert state.kind == "confirm" and state.claim is not None
        assert state.claim.approver == "ml-approvers@example.com"
        assert state.evidence is not None and state.evidence.candidate.runs == 0
    assert store.find("digits-svm", "v2").status is VersionStatus.PENDING  # type: ignore[union-attr]


def test_a_link_decides_once_and_a_reused_one_changes_nothing(workflow):
    requested()
    links = _links()
    decided = approval_links.submit(_token(links["approve"]), "  looks right  ")
    assert decided.kind == "decided" and decided.version is not None
    assert decided.version.status is VersionStatus.APPROVED and decided.version.decided_by == "ml-approvers@example.com"
    assert decided.version.comment == "looks right"
    for link in links.values():  # the same link again, or its twin: used
        assert approval_links.submit(_token(link), "again").kind == "used"
        assert approval_links.open_link(_token(link)).kind == "used"
    assert store.find("digits-svm", "v2").status is VersionStatus.APPROVED  # type: ignore[union-attr]
    assert [e["event"] for e in evidence_store.history("digits-svm")][-1] == "approved"


def test_a_tampered_malformed_or_foreign_link_is_invalid(workflow):
    requested()
    token = _token(_links()["reject"])
    payload, _, mac = token.partition(".")
    edited = json.loads(approval_links.signing._unb64(payload)) | {"d": "approve"}
    forged = approval_links.signing._b64(json.dumps(edited).encode()) + "." + mac
    for bad in (forged, token[:-3] + "AAA", "", "x" * 5000, "no-dot", payload + ".", "%%%.%%%"):
        assert approval_links.open_link(bad).kind == "invalid"
        assert approval_links.submit(bad, "").kind == "invalid"
    assert store.find("digits-svm", "v2").status is VersionStatus.PENDING  # type: ignore[union-attr]


def test_an_expired_link_changes_nothing(workflow):
    version = requested()
    _, nonce = store.approval("digits-svm", version.id)
    past = datetime.now(UTC) - timedelta(seconds=1)
    link = approval_links.link(BASE, version, "approve", "ml-approvers@example.com", nonce or "", past)
    assert approval_links.submit(_token(link), "late").kind == "expired"
    assert store.find("digits-svm", "v2").status is VersionStatus.PENDING  # type: ignore[union-attr]


def test_rejecting_takes_the_candidate_out_of_routing(workflow):
    requested(shadow_percent=100)
    assert approval_links.submit(_token(_links()["reject"]), "worse").kind == "decided"
    routing = store.fresh_routing("digits-svm")
    assert routing is not None and routing.candidate is None and routing.live.version == "v1"
    assert store.find("digits-svm", "v2").status is VersionStatus.REJECTED  # type: ignore[union-attr]


# --- the workflow's other tasks ----------------------------------------------------------------------


def test_promoting_retires_the_live_version_in_the_same_write(workflow):
    requested()
    approval_links.submit(_token(_links()["approve"]), "")
    assert promotion.promote("digits-svm", "v2", by="workflow")
    assert not promotion.promote("digits-svm", "v2", by="workflow")  # a retried task: nothing twice
    statuses = {v.id: v.status for v in store.list_versions("digits-svm")}
    assert statuses == {"v1": VersionStatus.RETIRED, "v2": VersionStatus.LIVE}
    routing = store.fresh_routing("digits-svm")
    assert routing is not None and routing.live == Arm(version="v2", endpoint=FOREST) and routing.candidate is None
    assert [e["event"] for e in evidence_store.history("digits-svm")][-1] == "promoted"


def _canary(outcomes: list[tuple[str, bool]]) -> None:
    requested(canary_percent=20, bake_minutes=1)
    approval_links.submit(_token(_links()["approve"]), "")
    promotion.start_canary("digits-svm", "v2")
    routing = store.fresh_routing("digits-svm")
    assert routing is not None and routing.canary_percent == 20
    for i, (side, succeeded) in enumerate(outcomes):
        evidence_store.record_outcome(
            "digits-svm", "v2", f"p{i}", "canary", side, Outcome(succeeded=succeeded, seconds=0.1)
        )  # type: ignore[arg-type]


def test_a_canary_that_fails_more_than_live_is_rolled_back_and_reported(workflow):
    _canary([("live", True)] * 20 + [("candidate", False)] * 3 + [("candidate", True)] * 2)
    assert promotion.judge_canary("digits-svm", "v2", margin=0.05) == "rolled_back"
    routing = store.fresh_routing("digits-svm")
    assert routing is not None and routing.candidate is None and routing.live.version == "v1"
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    last = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages[-1]
    assert "rolled back" in last.subject
    assert [e["event"] for e in evidence_store.history("digits-svm")][-1] == "rolled_back"


def test_a_canary_within_the_margin_goes_live(workflow):
    _canary([("live", True)] * 20 + [("candidate", True)] * 5)
    assert promotion.judge_canary("digits-svm", "v2", margin=0.05) == "live"
    assert store.fresh_routing("digits-svm").live.version == "v2"  # type: ignore[union-attr]


def test_an_approval_nobody_decides_expires(workflow):
    requested(shadow_percent=10)
    promotion.expire("digits-svm", "v2")
    promotion.expire("digits-svm", "v2")
    assert store.find("digits-svm", "v2").status is VersionStatus.EXPIRED  # type: ignore[union-attr]
    assert store.fresh_routing("digits-svm").candidate is None  # type: ignore[union-attr]
    assert [e["event"] for e in evidence_store.history("digits-svm")].count("expired") == 1
    links = _links()
    assert approval_links.submit(_token(links["approve"]), "").kind == "used"


def test_describe_shows_the_live_version_the_versions_and_the_history(workflow):
    described = versions.describe_service("digits-svm")
    assert described["version"] == "v1" and [v["id"] for v in described["versions"]] == ["v1"]
    requested(shadow_percent=50)
    described = versions.describe_service("digits-svm")
    assert described["candidate"] == "v2"
    assert described["versions"][1]["evidence"]["mode"] == "shadow"
    assert [e["event"] for e in described["history"]] == ["registered", "shadowing"]
    assert "versions" not in versions.describe_service("digits-ensemble")


# --- serving: the live version answers, the shadow is evidence only -------------------------------------


def test_a_shadowed_prediction_runs_on_both_versions_and_only_the_live_one_is_shown(workflow):
    from chorus.adapters import listings, payloads, predictions
    from chorus.api.models import PredictionRequest
    from chorus.domain import dispatch, results, submit
    from chorus.events.sagemaker import InferenceResult
    from tests.support import aws_resources
    from tests.support.aws_resources import TENANT, caller

    versions.register("digits-forest", EndpointDeclaration(name="forest-v2", mode="async"),
                      registered_by="alice", shadow_percent=100)  # fmt: skip
    who = caller()
    view = submit.submit(
        PredictionRequest.model_validate({"service": "digits-forest", "contentType": "application/json"}), who
    )
    key = payloads.upload_key(TENANT, view["id"])
    boto3.client("s3").put_object(
        Bucket=aws_resources.BUCKET, Key=key, Body=b'{"pixels": [0]}', ContentType="application/json"
    )
    dispatch.receive_upload(aws_resources.BUCKET, key)
    dispatch.receive_upload(aws_resources.BUCKET, key)  # a duplicate S3 event: no second shadow

    live = predictions.get(view["id"])
    shadow = predictions.get(trials.shadow_id(view["id"], "v2"))
    assert (live.status, live.version, live.trial and live.trial.side) == (Status.RUNNING, "v1", "live")
    assert (shadow.status, shadow.version, shadow.shadow_of) == (Status.RUNNING, "v2", view["id"])
    assert shadow.callback is None and shadow.run_deadline_at is not None and shadow.input == live.input
    # The shadow is nobody's to read or list
    assert predictions.find_owned(shadow.id, TENANT) is None
    assert [r.id for r in listings.list_for_tenant(TENANT, limit=10).records] == [view["id"]]

    for prediction_id, label in ((view["id"], 3), (shadow.id, 8)):
        out = f"async-outputs/{prediction_id}.out"
        boto3.client("s3").put_object(Bucket=aws_resources.BUCKET, Key=out, Body=json.dumps({"label": label}).encode())
        results.record_result(
            InferenceResult.model_validate(
                {
                    "invocationStatus": "Completed",
                    "inferenceId": prediction_id,
                    "responseParameters": {
                        "contentType": "application/json",
                        "outputLocation": f"s3://{aws_resources.BUCKET}/{out}",
                    },
                }
            )
        )
    (row,) = evidence_store.evidence("digits-forest", "v2")
    assert row.prediction_id == view["id"] and row.live and row.candidate
    assert (row.live.label, row.candidate.label) == ("3", "8")
    evidence = summarize("shadow", [row])
    assert (evidence.compared, evidence.agreed) == (1, 0)
