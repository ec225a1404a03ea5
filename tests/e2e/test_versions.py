"""Model versions end to end, on a stack of their own: `chorus admin versions register` → the
approval workflow from the template → the approval e-mail (read at the local AWS endpoint's
`/_local/emails`) → its link opened in headless Chromium, the shadow evidence read, Approve pressed →
predictions served by the new version. Then a rejection, a reused, an expired and a tampered link,
and a canary that fails and is rolled back on its own.

The steps build on each other (one version at a time is in flight per service), so they run in order
in one test module against one stack."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote

import pytest
import requests

from chorus.model.versions import share
from tests.e2e.conftest import RunningStack, StartStack
from tests.e2e.test_monitoring import held_out
from tests.e2e.test_tenancy import chorus as admin
from tests.support.browser import artifact_path, browser_session, require_browser

SERVICE = "digits-svm"
APPROVER = "ml-approvers@example.com"
SHADOW_PERCENT = 50
PREDICTIONS = 50
measured: dict[str, Any] = {}  # figures the closing note quotes, printed at the end


@pytest.fixture(scope="module")
def stack(start_stack: StartStack) -> Iterator[RunningStack]:
    # Routing is re-read every second here (10 s by default), so a 9 s canary is seen by every worker.
    yield start_stack(parameter_overrides={"VersionCacheSeconds": "1"})


def register(stack: RunningStack, *options: str) -> str:
    """`chorus admin versions register`; the new version's id is its last line."""
    out = admin(stack, "versions", "register", SERVICE, *options)
    return out.rstrip("\n").splitlines()[-1]


def emails(stack: RunningStack) -> list[dict[str, Any]]:
    response = requests.get(f"{stack.aws_endpoint_url}/_local/emails", timeout=10)
    response.raise_for_status()
    return list(response.json()["emails"])


def approval_links(stack: RunningStack, version: str, timeout: float = 30) -> dict[str, str]:
    """The approve and reject links of the approval e-mail for `version`."""
    deadline = time.monotonic() + timeout
    while True:
        for mail in reversed(emails(stack)):
            if mail["subject"] == f"Chorus: approve {SERVICE} {version}?":
                assert mail["to"] == [APPROVER] and mail["html"]
                found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", mail["text"], re.MULTILINE))
                return {"approve": found["Approve"], "reject": found["Reject"]}
        assert time.monotonic() < deadline, f"no approval e-mail for {version}"
        time.sleep(0.3)


def service(stack: RunningStack) -> dict[str, Any]:
    response = stack.api().request("GET", f"/services/{SERVICE}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def version_of(stack: RunningStack, version: str) -> dict[str, Any]:
    return next(v for v in service(stack)["versions"] if v["id"] == version)


def wait_status(stack: RunningStack, version: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (found := version_of(stack, version))["status"] != status:
        assert time.monotonic() < deadline, f"{version} is {found['status']}, not {status}"
        time.sleep(0.3)
    return found


def predict(stack: RunningStack, inputs: list[list[float]]) -> list[dict[str, Any]]:
    api = stack.api()

    def one(pixels: list[float]) -> dict[str, Any]:
        created = api.create({"service": SERVICE, "input": {"pixels": pixels}})
        return api.wait(created["id"], timeout=120)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, inputs))


def test_1_a_shadowed_version_is_approved_in_the_browser_and_then_serves(stack):
    require_browser()
    v2 = register(stack, "--endpoint", "digits-forest", "--mode", "async", "--shadow", str(SHADOW_PERCENT),
                  "--description", "the forest behind digits-svm")  # fmt: skip
    assert v2 == "v2"
    assert "v2" in admin(stack, "versions", "list", SERVICE) and "pending" in admin(stack, "versions", "list", SERVICE)
    finished = predict(stack, held_out(PREDICTIONS))
    assert all(p["status"] == "succeeded" and p["version"] == "v1" for p in finished)
    shadowed = sum(share(p["id"]) < SHADOW_PERCENT for p in finished)
    assert 0 < shadowed < PREDICTIONS
    deadline = time.monotonic() + 60  # the shadows run on the async forest endpoint, after their live twins
    while (evidence := version_of(stack, v2).get("evidence") or {}).get("candidate", {}).get("runs", 0) < shadowed:
        assert time.monotonic() < deadline, f"shadow evidence stuck at {evidence}"
        time.sleep(0.5)
    assert evidence["candidate"]["runs"] == evidence["live"]["runs"] == shadowed
    assert evidence["candidate"]["failures"] == 0 and evidence["compared"] == shadowed
    measured["evidence"] = evidence
    # A shadow is never shown: not in the listing, and its output went nowhere but the evidence.
    listed = stack.api().request("GET", f"/predictions?service={SERVICE}&limit=100").json()["predictions"]
    assert len(listed) == PREDICTIONS

    links = approval_links(stack, v2)
    mail = next(m for m in emails(stack) if m["subject"] == f"Chorus: approve {SERVICE} v2?")
    assert "registered digits-svm v2" in mail["text"] and "Shadow traffic: 50" in mail["text"]
    measured["shadowed"], measured["predictions"] = shadowed, PREDICTIONS
    for browser in browser_session():
        browser.open(links["approve"])
        assert browser.find("h1").text == f"Approve {SERVICE} v2?"
        table = browser.text("#evidence")
        assert f"predictions {shadowed} {shadowed}" in table, table
        agreement = browser.text("#agreement")
        assert f"of {shadowed} predictions" in agreement
        measured["page_evidence"] = {"table": table, "agreement": agreement}
        browser.open(links["approve"])  # opening it again (a mail scanner would) changes nothing
        assert version_of(stack, v2)["status"] == "pending"
        browser.fill("#comment", "shadow agrees; forest is fine")
        browser.screenshot(artifact_path("approval-page.png"))
        browser.click("#decide")
        approved_at = time.monotonic()
        browser.wait_for_text("Decision recorded")
        assert "decided by ml-approvers@example.com" in browser.text("#outcome")
        browser.screenshot(artifact_path("approval-decided.png"))

    # The next predictions are served by v2 (within the routing cache, VersionCacheSeconds) and succeed.
    pixels = held_out(PREDICTIONS + 20)[PREDICTIONS:]
    deadline = time.monotonic() + 30
    while True:
        served = predict(stack, pixels[:4])
        assert all(p["status"] == "succeeded" for p in served)
        if all(p["version"] == "v2" for p in served):
            measured["approval_to_serving_seconds"] = round(time.monotonic() - approved_at, 1)
            break
        assert time.monotonic() < deadline, [p["version"] for p in served]
    after = predict(stack, pixels[4:])
    assert all(p["status"] == "succeeded" and p["version"] == "v2" for p in after)
    detail = service(stack)
    assert detail["version"] == "v2" and detail["candidate"] is None
    statuses = {v["id"]: v["status"] for v in detail["versions"]}
    assert statuses == {"v1": "retired", "v2": "live"}
    v2_view = version_of(stack, "v2")
    assert v2_view["decidedBy"] == APPROVER and v2_view["comment"] == "shadow agrees; forest is fine"
    events = [(e["version"], e["event"]) for e in detail["history"]]
    assert events == [("v2", "registered"), ("v2", "shadowing"), ("v2", "approved"), ("v2", "promoted")]
    measured["v2_links"] = links


def test_2_a_second_version_is_rejected_and_reused_or_tampered_links_change_nothing(stack):
    v3 = register(stack, "--endpoint", "digits-svm", "--mode", "sync", "--shadow", "10")
    links = approval_links(stack, v3)
    rejected = requests.post(links["reject"], data={"comment": "no better than v2"}, timeout=30)
    assert rejected.status_code == 200 and "Decision recorded" in rejected.text
    assert rejected.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert wait_status(stack, v3, "rejected")["comment"] == "no better than v2"
    assert service(stack)["version"] == "v2" and service(stack)["candidate"] is None

    for link in (links["approve"], links["reject"], measured["v2_links"]["approve"]):
        again = requests.post(link, data={"comment": "again"}, timeout=30)
        assert again.status_code == 409 and "already used" in again.text, again.text
    token = unquote(links["approve"].rsplit("/", 1)[1])
    payload, _, mac = token.partition(".")
    for bad in (payload + "." + mac[::-1], payload[:-2] + "." + mac, "garbage", "a" * 3000 + ".b"):
        page = requests.post(links["approve"].rsplit("/", 1)[0] + "/" + quote(bad, safe=""), timeout=30)
        assert page.status_code == 400 and "not valid" in page.text
        assert (
            requests.get(links["approve"].rsplit("/", 1)[0] + "/" + quote(bad, safe=""), timeout=30).status_code == 400
        )
    statuses = {v["id"]: v["status"] for v in service(stack)["versions"]}
    assert statuses == {"v1": "retired", "v2": "live", "v3": "rejected"}


def test_3_an_approval_nobody_decides_expires_and_its_link_changes_nothing(stack):
    v4 = register(stack, "--endpoint", "digits-svm", "--mode", "sync", "--expires-in", "0.001")  # 3.6 s
    links = approval_links(stack, v4)
    assert wait_status(stack, v4, "expired", timeout=30)["status"] == "expired"
    late = requests.post(links["approve"], data={"comment": "late"}, timeout=30)
    assert late.status_code == 410 and "expired" in late.text
    assert service(stack)["version"] == "v2" and version_of(stack, v4)["status"] == "expired"


def test_4_a_failing_canary_is_rolled_back_on_its_own(stack):
    v5 = register(stack, "--endpoint", "no-such-endpoint", "--mode", "sync", "--canary", "50", "--bake", "0.15")
    links = approval_links(stack, v5)
    approved = requests.post(links["approve"], data={"comment": "try it on half"}, timeout=30)
    assert approved.status_code == 200
    wait_status(stack, v5, "canary", timeout=30)
    time.sleep(1.2)  # past the routing cache's lifetime
    during = predict(stack, held_out(30))
    on_canary = [p for p in during if p.get("version") == v5]
    assert on_canary and all(p["status"] == "failed" for p in on_canary)
    assert all(p["status"] == "succeeded" for p in during if p.get("version") == "v2")
    rolled = wait_status(stack, v5, "rolled_back", timeout=60)
    assert rolled["status"] == "rolled_back"
    assert any(m["subject"] == f"Chorus: {SERVICE} {v5} rolled back" for m in emails(stack))
    assert service(stack)["version"] == "v2"
    time.sleep(1.2)
    assert all(p["status"] == "succeeded" and p["version"] == "v2" for p in predict(stack, held_out(8)))
    events = [e["event"] for e in service(stack)["history"] if e["version"] == v5]
    assert events == ["registered", "approved", "canary_started", "rolled_back"]
    measured["canary"] = {"served": len(during), "on_canary": len(on_canary)}
    print("\nmodel-version figures:", measured)
