"""`chorus admin versions …`: register a model service's new version (which starts its approval
workflow) and list its versions (docs/versions.md). Both run the product's own use cases
(chorus.domain.versions) against the target's versions table and approval state machine."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from chorus_cli.arguments import bounded

if TYPE_CHECKING:
    from chorus_cli.target import Target


class VersionsUnavailable(Exception):
    """The target predates model versions (exit 1)."""


# Fractions allowed: `--bake 0.1` is 6 s, what a local canary bakes for.
percent = bounded(float, 0.01, 100, "a percentage above 0 and at most 100")
minutes = bounded(float, 0.01, 24 * 60, "a number of minutes, more than 0 and at most a day")
hours = bounded(float, 0.0001, 24 * 365, "a number of hours, more than 0 and at most a year")


def _require_versions(where: Target) -> None:
    missing = [r for r in ("VersionsTable", "ApprovalStateMachine") if r not in where.resources]
    if missing:
        raise VersionsUnavailable(f"{where.description} has no {' or '.join(missing)}: it predates model versions")


def register(args: argparse.Namespace, where: Target) -> int:
    from chorus.domain import versions
    from chorus.model.registry import EndpointDeclaration

    _require_versions(where)
    version = versions.register(
        args.service,
        EndpointDeclaration(name=args.endpoint, mode=args.mode),
        registered_by=where.identity,
        description=args.description or "",
        shadow_percent=args.shadow or 0,
        canary_percent=args.canary or 0,
        bake_minutes=args.bake or 0,
        approval_hours=args.expires_in,
        model_package_arn=args.model_package_arn,
    )
    trial = f", shadowing {version.shadow_percent:g} % of live traffic" if version.shadow_percent else ""
    canary = (
        f"; on approval a canary at {version.canary_percent:g} % for {version.bake_minutes:g} min"
        if version.canary_percent
        else "; on approval it serves all traffic"
    )
    print(f"registered {version.service} {version.id} on endpoint {version.endpoint.name}{trial}{canary}")
    print(f"approval requested; it expires at {version.approval_expires_at:%Y-%m-%d %H:%M:%S} UTC")
    print(version.id)
    return 0


def list_versions(args: argparse.Namespace, where: Target) -> int:
    from chorus.domain import versions

    _require_versions(where)
    found = versions.list_versions(args.service)
    if args.json:
        print(json.dumps([v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in found], indent=2))
        return 0
    rows: list[list[Any]] = [
        [
            v.id,
            v.status.value,
            f"{v.endpoint.name} ({v.endpoint.mode})",
            f"{v.shadow_percent:g}" if v.shadow_percent else "-",
            f"{v.canary_percent:g}/{v.bake_minutes:g}m" if v.canary_percent else "-",
            v.registered_by,
            v.decided_by or "-",
            v.comment or "",
        ]
        for v in found
    ]
    header = ["VERSION", "STATUS", "ENDPOINT", "SHADOW %", "CANARY", "REGISTERED BY", "DECIDED BY", "COMMENT"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def add_commands(admin: Any, common: list[argparse.ArgumentParser], listing: argparse.ArgumentParser) -> None:
    group = admin.add_parser("versions", help="a model service's versions and their approval").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    create = group.add_parser(
        "register",
        parents=common,
        help="register a new version (its approval starts at once; the version id is the last line)",
    )
    create.add_argument("service", metavar="SERVICE", help="a model service of the registry")
    create.add_argument("--endpoint", required=True, metavar="NAME", help="the SageMaker endpoint serving it")
    create.add_argument("--mode", choices=("async", "sync"), default="async", help="the endpoint's mode (async)")
    create.add_argument("--description", metavar="TEXT")
    create.add_argument("--model-package-arn", metavar="ARN", help="its SageMaker Model Registry package, if any")
    create.add_argument(
        "--shadow", type=percent, metavar="PERCENT", help="also send this share of live traffic to it until decided"
    )
    create.add_argument("--canary", type=percent, metavar="PERCENT", help="on approval, first serve this share")
    create.add_argument("--bake", type=minutes, metavar="MINUTES", help="how long the canary serves before judged")
    create.add_argument(
        "--expires-in", type=hours, default=72.0, metavar="HOURS", help="approval timeout in hours (default 72)"
    )
    create.set_defaults(run=register)
    listed = group.add_parser("list", parents=[*common, listing], help="a service's versions, oldest first")
    listed.add_argument("service", metavar="SERVICE")
    listed.set_defaults(run=list_versions)
