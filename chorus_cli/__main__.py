"""`chorus`: the Chorus command line.

The API's commands, for anyone with an API token (chorus_client.cli; docs/client.md):

    chorus predict SERVICE [FILE | --input JSON] [--wait] [--timeout S] [--webhook URL]
                   [--metadata K=V …] [--deadline S] [--output FILE]
    chorus get ID | list | cancel ID | watch ID | download ID [-o FILE] | services
    chorus webhooks secret | webhooks verify --id … --timestamp … --signature … < body

    Each takes --json, and --profile NAME or --local [READY_FILE] (else CHORUS_API_URL and
    CHORUS_API_TOKEN). Exit codes: 0 done, 1 failed otherwise, 2 usage or configuration error,
    3 the API answered an error, 4 the prediction failed, was canceled or expired.

The operator's commands, with AWS credentials for the stack (or --local), `chorus admin …`:

    chorus admin tenants create NAME [--rate-limit R] [--burst B] [--daily-quota Q]
                                     [--email-recipients a@x.com @y.org …] [--webhook-hosts h.x.com *.y.org …]
                                                           --stack-name STACK | --local [READY_FILE]
    chorus admin tenants update NAME [--rate-limit R] [--burst B] [--daily-quota Q (0: none)]
                                     [--email-recipients …] [--webhook-hosts …]   (replaces a list; none clears it)
    chorus admin tenants rotate-secret NAME                (the new webhook secret is the last line)
    chorus admin tenants list [--json]                     (limits and allow-lists, never secrets)
    chorus admin tokens create --tenant NAME [--scopes predictions:create predictions:read admin]
                               [--expires-in 30d|12h|90m|3600s]    (the token is the last line, shown once)
    chorus admin tokens list [--tenant NAME] [--json]      (never secrets or hashes)
    chorus admin tokens revoke TOKEN_ID
    chorus admin audit --tenant NAME [--json]              (who did what, and when)
    chorus admin monitor baseline SERVICE --data FILE.jsonl   (a drift baseline from reference data)
    chorus admin monitor run SERVICE [--since ISO] [--until ISO] [--json]   (judge a window now)
    chorus admin versions register SERVICE --endpoint NAME [--mode async|sync] [--description TEXT]
                                   [--shadow PERCENT] [--canary PERCENT --bake MINUTES] [--expires-in HOURS]
                                                           (starts its approval; the version id is the last line)
    chorus admin versions list SERVICE [--json]            (status, endpoint, shares, who decided)

Limits are the tenant's API Gateway usage plan: R requests per second (default 10), bursts of B
(default 20), at most Q requests per UTC day (default: no quota); over them the API answers 429.

`chorus admin` exit codes: 0 done, 1 failed (the target or the operation), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chorus_cli import DEFAULT_READY_FILE  # importing chorus_cli puts the layer package `chorus` on sys.path
from chorus_cli import monitor as monitor_commands
from chorus_cli import versions as version_commands
from chorus_cli.arguments import bounded
from chorus_client import cli as api_commands

if TYPE_CHECKING:
    from chorus_cli.target import Target

PROG = "chorus"
_DURATION = re.compile(r"^(?P<count>[1-9][0-9]{0,9})(?P<unit>[dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # chorus.model.tenancy.TENANT_NAME
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")
_SCOPES = ("predictions:create", "predictions:read", "admin")  # chorus.model.tenancy.Scope


# --- argument types (a bad value is a usage error: exit 2) -----------------------------------------


def duration(value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 30d, 12h, 90m or 3600s")
    try:
        return timedelta(**{_UNITS[match["unit"]]: int(match["count"])})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{value!r} is too long") from None


def tenant_name(value: str) -> str:
    if not _TENANT.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a tenant name: 1-63 lowercase letters, digits and '-', not starting with '-'"
        )
    return value


# chorus.model.tenancy.Limits: MAX_RATE_LIMIT, MAX_BURST_LIMIT
rate_limit = bounded(float, 0.001, 10_000, "a rate: requests per second, more than 0 and at most 10000")
burst_limit = bounded(int, 1, 5_000, "a burst: a whole number of requests from 1 to 5000")
daily_quota = bounded(int, 0, 10**12, "a daily quota: a whole number of requests (0: no quota)")


def token_id(value: str) -> str:
    """A token id, or a whole token (its id is taken from it)."""
    from chorus.model.tenancy import parse_token

    parsed = parse_token(value)
    if parsed is not None:
        return parsed[0]
    if not _TOKEN_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a token id (12 hex characters, as `tokens list` shows)")
    return value


# --- commands ---------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    from chorus.core.clock import iso

    return iso(moment) or "-"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def recipient(value: str) -> str:
    from chorus.model.tenancy import recipient_entry

    try:
        return recipient_entry(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def webhook_host(value: str) -> str:
    from chorus.model.tenancy import host_entry

    try:
        return host_entry(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lists(tenant: Any) -> str:
    recipients = " ".join(tenant.email_recipients) or "none (no e-mail)"
    hosts = " ".join(tenant.webhook_hosts) or "any public host"
    return f"e-mail recipients: {recipients}; webhook hosts: {hosts}"


def _limits(tenant: Any) -> str:
    if tenant.limits is None:
        return "limits: none (no usage plan: every request is refused until they are set)"
    return f"limits: {tenant.limits.describe()} (usage plan {tenant.usage_plan_id})"


def tenants_create(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tenants
    from chorus.model.tenancy import Limits

    limits = Limits().changed(rate_limit=args.rate_limit, burst_limit=args.burst, daily_quota=args.daily_quota)
    tenant = tenants.create_tenant(
        args.name,
        created_by=where.identity,
        limits=limits,
        email_recipients=args.email_recipients or (),
        webhook_hosts=args.webhook_hosts or (),
    )
    print(f"created tenant {tenant.tenant} on {where.description}")
    print(_limits(tenant))
    print(_lists(tenant))
    return 0


def tenants_update(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tenants, tokens

    given = (args.email_recipients, args.webhook_hosts, args.rate_limit, args.burst, args.daily_quota)
    if all(value is None for value in given):
        return _fail(
            "nothing to update: give --rate-limit, --burst, --daily-quota, --email-recipients and/or --webhook-hosts"
        )
    tenant = tenants.update_tenant(
        args.name,
        updated_by=where.identity,
        email_recipients=args.email_recipients,
        webhook_hosts=args.webhook_hosts,
        rate_limit=args.rate_limit,
        burst_limit=args.burst,
        daily_quota=args.daily_quota,
    )
    # Tokens made before the tenant had a usage plan learn its key now.
    stamped = tokens.stamp_usage_key(tenant)
    print(f"updated tenant {tenant.tenant} on {where.description}")
    print(_limits(tenant))
    if given[2:] != (None, None, None):
        print("API Gateway applies changed limits after a short delay (seconds to a minute), not at once")
    if stamped:
        print(f"{stamped} token(s) of the tenant now name its usage plan")
    print(_lists(tenant))
    return 0


def tenants_rotate_secret(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tenants

    tenant = tenants.rotate_webhook_secret(args.name, rotated_by=where.identity)
    print(f"rotated the webhook secret of tenant {tenant.tenant} on {where.description}")
    print(f"the previous secret keeps signing beside it until {_when(tenant.previous_webhook_secret_expires_at)}")
    print("the new secret follows:")
    print(tenant.webhook_secret)
    return 0


def tenants_list(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tenants

    found = tenants.list_tenants()
    if args.json:
        _json([t.public() for t in found])  # never the secrets
    elif not found:
        print(f"no tenants on {where.description}")
    else:
        _table(
            [
                [
                    t.tenant,
                    f"{t.limits.rate_limit:g}" if t.limits else "-",
                    str(t.limits.burst_limit) if t.limits else "-",
                    str((t.limits.daily_quota or "none") if t.limits else "-"),
                    _when(t.created_at),
                    t.created_by,
                    ",".join(t.email_recipients) or "-",
                    ",".join(t.webhook_hosts) or "(any)",
                ]
                for t in found
            ],
            ["TENANT", "RATE/S", "BURST", "DAILY QUOTA", "CREATED", "CREATED BY", "E-MAIL RECIPIENTS", "WEBHOOK HOSTS"],
        )
    return 0


def audit_list(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import audit

    events = audit.list_events(args.tenant)
    if args.json:
        _json([e.model_dump(mode="json") for e in events])
    elif not events:
        print(f"no audit events for tenant {args.tenant} on {where.description}")
    else:
        _table(
            [
                [e.moment, e.action, e.actor, " ".join(f"{k}={_detail(v)}" for k, v in sorted(e.details.items()))]
                for e in events
            ],
            ["AT", "ACTION", "BY", "DETAILS"],
        )
    return 0


def _detail(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def tokens_create(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tokens
    from chorus.core.clock import utcnow
    from chorus.model.tenancy import DEFAULT_SCOPES, Scope

    scopes = [Scope(s) for s in args.scopes] if args.scopes else list(DEFAULT_SCOPES)
    expires_at = utcnow() + args.expires_in if args.expires_in else None
    token, plaintext = tokens.create_token(args.tenant, scopes, created_by=where.identity, expires_at=expires_at)
    print(f"created token {token.token_id} for tenant {token.tenant} on {where.description}")
    print(f"scopes: {' '.join(token.scopes)}; expires: {_when(token.expires_at) if expires_at else 'never'}")
    print("the token follows; it is shown only this once, store it now:")
    print(plaintext)
    return 0


def _state(token: Any, now: datetime) -> str:
    if token.revoked:
        return "revoked"
    if token.expires_at is not None and now >= token.expires_at:
        return "expired"
    return "active"


def tokens_list(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tokens
    from chorus.core.clock import utcnow

    found = tokens.list_tokens(args.tenant)
    now = utcnow()
    if args.json:
        # Never the hash: what identifies a token to an operator is its id.
        _json(
            [
                {
                    **t.model_dump(mode="json", by_alias=True, exclude={"secret_hash", "usage_key"}),
                    "state": _state(t, now),
                }
                for t in found
            ]
        )
    elif not found:
        print(f"no tokens{f' for tenant {args.tenant}' if args.tenant else ''} on {where.description}")
    else:
        _table(
            [
                [
                    t.token_id,
                    t.tenant,
                    _state(t, now),
                    ",".join(t.scopes),
                    _when(t.created_at),
                    _when(t.expires_at),
                    _when(t.last_used_at),
                ]
                for t in found
            ],
            ["ID", "TENANT", "STATE", "SCOPES", "CREATED", "EXPIRES", "LAST USED"],
        )
    return 0


def tokens_revoke(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import tokens

    token = tokens.revoke_token(args.token_id, revoked_by=where.identity)
    print(f"revoked token {token.token_id} of tenant {token.tenant} on {where.description}")
    return 0


# --- the parser -------------------------------------------------------------------------------------


def _target_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    choice = options.add_mutually_exclusive_group(required=True)
    choice.add_argument("--stack-name", metavar="NAME", help="a deployed stack (CloudFormation stack name)")
    choice.add_argument(
        "--local",
        metavar="READY_FILE",
        nargs="?",
        const=DEFAULT_READY_FILE,
        type=Path,
        help=f"a running `make local`, found through its ready file (default {DEFAULT_READY_FILE.name} "
        "in the repository root)",
    )
    options.add_argument("--region", help="with --stack-name: the stack's region (default: boto3's)")
    options.add_argument("--profile", help="with --stack-name: an AWS profile (default: boto3's)")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    api_commands.add_commands(commands, ready_file=DEFAULT_READY_FILE)
    admin = commands.add_parser(
        "admin", help="tenants, API tokens, the audit trail, drift monitoring and model versions (operators)"
    ).add_subparsers(dest="resource", metavar="RESOURCE", required=True)
    common = [_target_options()]
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    tenants = admin.add_parser("tenants", help="who may call Chorus").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    allow_lists = argparse.ArgumentParser(add_help=False)
    allow_lists.add_argument(
        "--email-recipients",
        nargs="*",
        type=recipient,
        metavar="RECIPIENT",
        help="addresses (a@x.com) or domains (@x.com) e-mail callbacks may go to (default: none, no e-mail)",
    )
    allow_lists.add_argument(
        "--webhook-hosts",
        nargs="*",
        type=webhook_host,
        metavar="HOST",
        help="host names (h.x.com) or subdomains (*.x.com) webhooks may go to (default: any public host)",
    )
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument(
        "--rate-limit", type=rate_limit, metavar="R", help="steady requests per second (default 10 on create)"
    )
    limits.add_argument(
        "--burst", type=burst_limit, metavar="B", help="requests above the rate in a burst (default 20)"
    )
    limits.add_argument(
        "--daily-quota",
        type=daily_quota,
        metavar="Q",
        help="requests per UTC day (default: no quota; 0 removes a quota)",
    )
    create = tenants.add_parser("create", parents=[*common, limits, allow_lists], help="create a tenant")
    create.add_argument("name", type=tenant_name, metavar="NAME")
    create.set_defaults(run=tenants_create)
    update = tenants.add_parser(
        "update",
        parents=[*common, limits, allow_lists],
        help="change a tenant's limits, or replace its allow-lists (an empty list clears one)",
    )
    update.add_argument("name", type=tenant_name, metavar="NAME")
    update.set_defaults(run=tenants_update)
    rotate = tenants.add_parser(
        "rotate-secret",
        parents=common,
        help="a new webhook signing secret (the last line); the old one signs beside it for 24 h",
    )
    rotate.add_argument("name", type=tenant_name, metavar="NAME")
    rotate.set_defaults(run=tenants_rotate_secret)
    tenants.add_parser("list", parents=[*common, listing], help="list tenants").set_defaults(run=tenants_list)

    tokens = admin.add_parser("tokens", help="a tenant's API tokens").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    create = tokens.add_parser("create", parents=common, help="create a token (printed once, as the last line)")
    create.add_argument("--tenant", required=True, type=tenant_name, metavar="NAME")
    create.add_argument(
        "--scopes",
        nargs="+",
        choices=_SCOPES,
        metavar="SCOPE",
        help=f"any of {', '.join(_SCOPES)} (default: predictions:create predictions:read)",
    )
    create.add_argument("--expires-in", type=duration, metavar="DURATION", help="e.g. 30d, 12h, 90m, 3600s")
    create.set_defaults(run=tokens_create)
    listed = tokens.add_parser("list", parents=[*common, listing], help="list tokens (never their secrets)")
    listed.add_argument("--tenant", type=tenant_name, metavar="NAME")
    listed.set_defaults(run=tokens_list)
    revoke = tokens.add_parser("revoke", parents=common, help="revoke a token")
    revoke.add_argument("token_id", type=token_id, metavar="TOKEN_ID")
    revoke.set_defaults(run=tokens_revoke)

    audit = admin.add_parser("audit", parents=[*common, listing], help="a tenant's audit trail, oldest first")
    audit.add_argument("--tenant", required=True, type=tenant_name, metavar="NAME")
    audit.set_defaults(run=audit_list)
    monitor_commands.add_commands(admin, common, listing)
    version_commands.add_commands(admin, common, listing)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    if args.group != "admin":
        return api_commands.run(args)
    if args.stack_name is None and (args.region or args.profile):
        parser.error("--region and --profile go with --stack-name")
    from botocore.exceptions import BotoCoreError, ClientError

    from chorus.core.errors import ChorusError
    from chorus_cli import target
    from chorus_cli.target import TargetError

    try:
        where = (
            target.local(args.local)
            if args.local is not None
            else target.aws(args.stack_name, args.region, args.profile)
        )
        return int(args.run(args, where))
    except (TargetError, monitor_commands.MonitorFailed, version_commands.VersionsUnavailable) as exc:
        return _fail(str(exc))
    except ChorusError as exc:
        return _fail(exc.message)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(f"{error.get('Code', 'error')}: {error.get('Message') or exc}")
    except BotoCoreError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
