"""The approver's side, for people rather than programs: the approval e-mail and the small HTML
pages its links open. Everything shown is escaped; the pages load nothing from anywhere."""

from __future__ import annotations

from html import escape
from typing import Any

from chorus.core.clock import iso
from chorus.model.approvals import LinkState
from chorus.model.versions import Evidence, ModelVersion, SideSummary

# No script, no remote resource, no framing; the form may post only back to this page.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2733}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #c8d0d8;padding:.35rem .7rem;text-align:left}"
    "textarea{width:100%;min-height:5rem}button{font-size:1.05rem;padding:.5rem 1.4rem;margin-top:.8rem}"
    ".approve{background:#1c7c3c;color:#fff}.reject{background:#a3262a;color:#fff}.note{color:#59636e}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{_STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def evidence_rows(evidence: Evidence) -> list[tuple[str, str, str]]:
    """(figure, live, candidate) rows: the same figures in the e-mail and on the page."""

    def side(summary: SideSummary) -> list[str]:
        return [str(summary.runs), _percent(summary.failure_rate), _ms(summary.p50_ms), _ms(summary.mean_ms)]

    names = ["predictions", "failure rate", "latency p50", "latency mean"]
    return list(zip(names, side(evidence.live), side(evidence.candidate), strict=True))


def _agreement(evidence: Evidence) -> str:
    if not evidence.compared:
        return "No prediction with a label has been answered by both versions yet."
    return (
        f"The two versions gave the same label on {evidence.agreed} of {evidence.compared} predictions "
        f"({_percent(evidence.agreement_rate)})."
    )


def _evidence_html(version: ModelVersion, evidence: Evidence | None) -> str:
    if evidence is None:
        return '<p class="note">This version has no shadow traffic: there is no evidence to compare.</p>'
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(live)}</td><td>{escape(candidate)}</td></tr>"
        for name, live, candidate in evidence_rows(evidence)
    )
    return (
        f"<h2>Shadow evidence</h2><p>{escape(str(version.shadow_percent))} % of live traffic is also sent to "
        f"{escape(version.id)}; its answers are kept, never returned.</p>"
        f'<table id="evidence"><tr><th></th><th>live</th><th>{escape(version.id)} (shadow)</th></tr>{rows}</table>'
        f'<p id="agreement">{escape(_agreement(evidence))}</p>'
    )


def _version_html(version: ModelVersion) -> str:
    rows = [
        ("service", version.service),
        ("version", version.id),
        ("endpoint", f"{version.endpoint.name} ({version.endpoint.mode})"),
        ("description", version.description or "-"),
        ("registered by", version.registered_by),
        ("registered at", iso(version.registered_at) or ""),
    ]
    if version.canary_percent:
        rows.append(("on approval", f"canary at {version.canary_percent} % for {version.bake_minutes} min, then all"))
    else:
        rows.append(("on approval", "serves all traffic at once"))
    if version.model_package_arn:
        rows.append(("model package", version.model_package_arn))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table id="version">{cells}</table>'


def render(state: LinkState) -> str:
    """The page a link (GET) or its form (POST) shows."""
    claim, version = state.claim, state.version
    if state.kind == "invalid":
        return _page(
            "This approval link is not valid",
            f"<p>{escape(state.reason or 'The link was changed or is incomplete.')} Nothing was changed. "
            "Open the link exactly as it came in the e-mail.</p>",
        )
    assert claim is not None and version is not None
    what = f"{version.service} {version.id}"
    if state.kind == "expired":
        return _page(
            "This approval link has expired",
            f"<p>The approval of {escape(what)} expired at {escape(iso(claim.expires_at) or '')}. Nothing was changed; "
            "register the version again to ask for a new decision.</p>",
        )
    if state.kind in {"used", "decided"}:
        outcome = _outcome(version)
        title = "Decision recorded" if state.kind == "decided" else "This approval link was already used"
        note = "" if state.kind == "decided" else "<p>Nothing was changed.</p>"
        return _page(title, f'<p id="outcome">{escape(what)}: {escape(outcome)}</p>{note}{_version_html(version)}')
    verb = "Approve" if claim.decision == "approve" else "Reject"
    effect = (
        "It will then take traffic as shown above."
        if claim.decision == "approve"
        else "The live version keeps all traffic; the candidate's shadow traffic stops."
    )
    form = (
        f'<form method="post"><label for="comment">Comment (optional)</label>'
        f'<textarea id="comment" name="comment" maxlength="2000"></textarea>'
        f'<button type="submit" id="decide" class="{claim.decision}">{verb} {escape(version.id)}</button></form>'
    )
    return _page(
        f"{verb} {what}?",
        f"<p>Signed in as {escape(claim.approver)} by this link. {escape(effect)}</p>"
        f"{_version_html(version)}{_evidence_html(version, state.evidence)}{form}",
    )


def _outcome(version: ModelVersion) -> str:
    status = version.status.value.replace("_", " ")
    if version.decided_by:
        comment = f' ("{version.comment}")' if version.comment else ""
        return f"{status}; decided by {version.decided_by} at {iso(version.decided_at)}{comment}"
    return status


def email(
    version: ModelVersion, approver: str, links: dict[str, str], evidence: Evidence | None
) -> tuple[str, str, str]:
    """(subject, text, html) of the approval request."""
    subject = f"Chorus: approve {version.service} {version.id}?"
    lines = [
        f"{version.registered_by} registered {version.service} {version.id} "
        f"(endpoint {version.endpoint.name}, {version.endpoint.mode}) at {iso(version.registered_at)}.",
        f"Description: {version.description or '-'}",
    ]
    if evidence is not None:
        lines.append(f"Shadow traffic: {version.shadow_percent} % of live predictions also go to {version.id}.")
        lines += [f"  {name}: live {live}, {version.id} {cand}" for name, live, cand in evidence_rows(evidence)]
        lines.append(f"  {_agreement(evidence)}")
        lines.append("The links open a page with the latest figures.")
    lines += [
        "",
        f"Approve: {links['approve']}",
        f"Reject:  {links['reject']}",
        "",
        f"The links are for {approver} only, work once, and expire at {iso(version.approval_expires_at)}.",
        "Opening a link changes nothing: its page asks you to confirm.",
    ]
    body: list[Any] = [
        f"<p>{escape(lines[0])}</p>",
        _version_html(version),
        _evidence_html(version, evidence),
        f'<p><a href="{escape(links["approve"])}">Approve {escape(version.id)}</a> · '
        f'<a href="{escape(links["reject"])}">Reject {escape(version.id)}</a></p>',
        f'<p class="note">{escape(lines[-2])} {escape(lines[-1])}</p>',
    ]
    return subject, "\n".join(lines), _page(subject, "".join(body))
