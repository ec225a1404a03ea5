"""The API's commands of `chorus` (the repository's console script adds `chorus admin …`; without it,
`python -m chorus_client …` runs the same commands).

    chorus predict SERVICE [FILE | --input JSON] [--wait] [--timeout S] [--webhook URL]
                   [--metadata K=V …] [--deadline S] [--output FILE]
    chorus get ID                  chorus list [--service S] [--status S] [--limit N | --all]
    chorus cancel ID               chorus watch ID [--timeout S]
    chorus download ID [-o FILE]   chorus services
    chorus webhooks secret         chorus webhooks verify [--secret S] --id … --timestamp … --signature … < body

Every command takes `--json` (the API's JSON on standard output, for scripts), and `--profile NAME`
or `--local [READY_FILE]` to choose the API (else CHORUS_API_URL and CHORUS_API_TOKEN, else the
`default` profile of ~/.config/chorus/config.toml). Progress, retries and errors go to standard
error; results to standard output.

Exit codes: 0 done · 1 failed otherwise (no answer, a wait that ran out, a webhook that does not
verify, a file that cannot be written) · 2 usage or configuration error · 3 the API answered an
error (its code and message are printed) · 4 the prediction failed, was canceled or expired.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO

from chorus_client import config
from chorus_client.client import Client
from chorus_client.errors import (
    ApiError,
    ChorusClientError,
    PredictionFailed,
    WaitTimeout,
)
from chorus_client.models import UNSUCCESSFUL, Prediction, PredictionSummary, Status
from chorus_client.progress import Progress, describe_step
from chorus_client.transport import RetryEvent
from chorus_client.webhooks import verify_webhook

PROG = "chorus"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API_ERROR, EXIT_PREDICTION_FAILED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
MAX_DEADLINE_SECONDS = 7 * 24 * 3600
WEBHOOK_SECRET_VARIABLE = "CHORUS_WEBHOOK_SECRET"


class UsageError(Exception):
    """A command used wrongly, found after parsing (exit 2)."""


# --- argument types (a bad value is a usage error: exit 2) -----------------------------------------


def _json_value(value: str) -> Any:
    """JSON given inline, `@FILE` to read it from a file, or `-` for standard input."""
    try:
        if value == "-":
            text = sys.stdin.read()
        elif value.startswith("@"):
            text = Path(value[1:]).read_text()
        else:
            text = value
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _input_file(value: str) -> Path | str:
    if value == "-":
        return value
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def _metadata_pair(value: str) -> tuple[str, str]:
    key, equals, text = value.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE")
    return key, text


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return number


def _deadline(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DEADLINE_SECONDS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a deadline: whole seconds from 1 to {MAX_DEADLINE_SECONDS}")
    return int(value)


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


# --- how commands talk to the API and the terminal ----------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    progress: Progress | None = None
    _client: Client | None = None

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def client(self) -> Client:
        if self._client is None:
            local = self.args.local
            found = config.resolve(
                profile=self.args.profile,
                use_local=local is not None,
                local_file=local if isinstance(local, Path) else None,
            )
            self._client = Client(found.url, found.token, on_retry=self.retried)
        return self._client

    def retried(self, event: RetryEvent) -> None:
        answer = f"HTTP {event.status} {event.reason}" if event.status is not None else event.reason
        self.note(f"{PROG}: {answer}: retrying in {event.delay:.1f} s (try {event.attempt + 1} of {event.attempts})")

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note(text)
        else:
            print(text, file=self.err, flush=True)

    def print_json(self, document: Any) -> None:
        print(json.dumps(document, indent=2), file=self.out)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or kind == "application/json" or kind.endswith("+json")


def _write_output(ctx: Context, client: Client, prediction: Prediction, destination: Path | None) -> int:
    """The output saved to `destination`, or printed (text or JSON) / written raw (to a pipe)."""
    if destination is not None:
        written = client.download(prediction, to=destination)
        content_type = prediction.output.content_type if prediction.output else "?"
        ctx.note(f"saved the output ({written} bytes, {content_type}) to {destination}")
        return EXIT_OK
    output = client.download(prediction)
    content_type = prediction.output.content_type if prediction.output else "application/octet-stream"
    if _is_text(content_type):
        text = output.decode("utf-8", errors="replace")
        ctx.out.write(text if text.endswith("\n") else text + "\n")
        ctx.out.flush()
        return EXIT_OK
    if ctx.out.isatty():
        raise UsageError(f"the output is {content_type}, not text: save it with --output FILE")
    ctx.out.flush()
    binary: IO[bytes] = ctx.out.buffer  # type: ignore[attr-defined]
    binary.write(output)
    binary.flush()
    return EXIT_OK


def _failed(ctx: Context, prediction: PredictionSummary) -> int:
    print(f"{PROG}: error: {PredictionFailed(prediction)}", file=ctx.err)
    return EXIT_PREDICTION_FAILED


def _watching(ctx: Context, label: str = "") -> Progress | None:
    if ctx.args.quiet:
        return None
    ctx.progress = Progress(ctx.err, label=label)
    return ctx.progress


# --- the commands --------------------------------------------------------------------------------------


def predict(ctx: Context) -> int:
    args = ctx.args
    if (args.file is None) == (args.input is None):
        raise UsageError("give the input as a FILE or as --input JSON (one of them)")
    if args.output is not None and not args.wait:
        raise UsageError("--output saves the result: it needs --wait")
    file_or_input: Any = args.input
    if args.file is not None:
        file_or_input = sys.stdin.buffer if args.file == "-" else args.file
    client = ctx.client()
    progress = _watching(ctx, args.service) if args.wait else None
    options: dict[str, Any] = dict(
        wait=args.wait,
        timeout=args.timeout,
        content_type=args.content_type,
        webhook=args.webhook,
        metadata=dict(args.metadata) if args.metadata else None,
        deadline=args.deadline,
        idempotency_key=args.idempotency_key,
    )
    try:
        if progress is None:
            prediction = client.predict(args.service, file_or_input, **options)
        else:
            with progress:
                prediction = client.predict(args.service, file_or_input, on_update=progress.update, **options)
    except KeyboardInterrupt:
        if progress is not None and progress.current is not None:
            ctx.note(f"interrupted: prediction {progress.current.id} goes on (`{PROG} watch {progress.current.id}`)")
        raise
    finally:
        ctx.progress = None
    if not args.wait:
        if ctx.json:
            document = prediction.to_json()
            if args.file is not None:
                document.pop("upload", None)  # used already
            ctx.print_json(document)
        else:
            print(prediction.id, file=ctx.out)
            ctx.note(f"{prediction.status.value}: `{PROG} watch {prediction.id}` follows it")
        return EXIT_OK
    if ctx.json:
        ctx.print_json(prediction.to_json())
    if prediction.status in UNSUCCESSFUL:
        return _failed(ctx, prediction)
    if ctx.json:
        return _write_output(ctx, client, prediction, args.output) if args.output else EXIT_OK
    return _write_output(ctx, client, prediction, args.output)


def watch(ctx: Context) -> int:
    client = ctx.client()
    progress = _watching(ctx)
    try:
        if progress is None:
            prediction = client.wait(ctx.args.id, timeout=ctx.args.timeout)
        else:
            with progress:
                prediction = client.wait(ctx.args.id, timeout=ctx.args.timeout, on_update=progress.update)
    finally:
        ctx.progress = None
    if ctx.json:
        ctx.print_json(prediction.to_json())
    else:
        print(f"{prediction.id} {prediction.status.value}", file=ctx.out)
    return _failed(ctx, prediction) if prediction.status in UNSUCCESSFUL else EXIT_OK


def get(ctx: Context) -> int:
    prediction = ctx.client().get(ctx.args.id)
    if ctx.json:
        ctx.print_json(prediction.to_json())
        return EXIT_OK
    p = prediction
    rows = [
        ("id", p.id),
        ("service", f"{p.service} ({p.kind})"),
        ("status", p.status.value),
        ("created", _when(p.created_at)),
        ("started", _when(p.started_at)),
        ("completed", _when(p.completed_at)),
    ]
    if p.parent_id:
        rows.append(("step of", f"{p.parent_id} (step {p.step_name})"))
    if p.deadline_at:
        rows.append(("deadline", _when(p.deadline_at)))
    timings = [
        f"{name} {value:.3f} s"
        for name, value in (
            ("wait", p.metrics.wait_seconds),
            ("run", p.metrics.run_seconds),
            ("total", p.metrics.total_seconds),
        )
        if value is not None
    ]
    if timings:
        rows.append(("metrics", " · ".join(timings)))
    if p.output:
        rows.append(
            ("output", f"{p.output.content_type}, `{PROG} download {p.id}` (URL until {_when(p.output.expires_at)})")
        )
    if p.error:
        rows.append(("error", f"{p.error.code}: {p.error.message}"))
    for channel, delivery in (("webhook", p.webhook), ("e-mail", p.email)):
        if delivery is not None:
            text = f"{delivery.event} {delivery.status.value}, {delivery.attempts} attempt(s)"
            rows.append((channel, text + (f", last error: {delivery.last_error}" if delivery.last_error else "")))
    if p.metadata:
        rows.append(("metadata", json.dumps(p.metadata)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}", file=ctx.out)
    if p.steps:
        print("steps", file=ctx.out)
        for step in p.steps:
            print(f"  {describe_step(step)}{f'  {step.id}' if step.id else ''}", file=ctx.out)
    return EXIT_OK


def list_(ctx: Context) -> int:
    args = ctx.args
    client = ctx.client()
    wanted = None if args.all else args.limit
    found: list[PredictionSummary] = []
    cursor: str | None = args.cursor
    while True:
        size = 100 if wanted is None else min(100, wanted - len(found))
        page = next(
            client.list(service=args.service, status=args.status, parent_id=args.parent_id, limit=size, cursor=cursor)
        )
        found.extend(page.predictions)
        cursor = page.next_cursor
        if cursor is None or (wanted is not None and len(found) >= wanted):
            break
    if ctx.json:
        ctx.print_json({"predictions": [p.to_json() for p in found], "nextCursor": cursor})
        return EXIT_OK
    _table(
        ctx.out,
        ["ID", "SERVICE", "STATUS", "CREATED", "TOTAL S"],
        [
            [
                p.id,
                p.service if p.step_name is None else f"{p.service} (step {p.step_name})",
                p.status.value,
                _when(p.created_at),
                "-" if p.metrics.total_seconds is None else f"{p.metrics.total_seconds:.2f}",
            ]
            for p in found
        ],
    )
    if cursor is not None:
        ctx.note(f"more: `{PROG} list --cursor {cursor}`")
    return EXIT_OK


def cancel(ctx: Context) -> int:
    prediction = ctx.client().cancel(ctx.args.id)
    if ctx.json:
        ctx.print_json(prediction.to_json())
    else:
        print(f"{prediction.id} {prediction.status.value}", file=ctx.out)
    return EXIT_OK


def download(ctx: Context) -> int:
    client = ctx.client()
    prediction = client.get(ctx.args.id)
    if prediction.status in UNSUCCESSFUL:
        raise PredictionFailed(prediction)
    if ctx.json:
        if prediction.output is None:
            raise ChorusClientError(f"prediction {prediction.id} is {prediction.status.value}: it has no output yet")
        document = {"id": prediction.id, **prediction.output.to_json()}
        if ctx.args.output is not None:
            document.update(path=str(ctx.args.output), bytes=client.download(prediction, to=ctx.args.output))
        ctx.print_json(document)
        return EXIT_OK
    return _write_output(ctx, client, prediction, ctx.args.output)


def services(ctx: Context) -> int:
    found = ctx.client().services()
    if ctx.json:
        ctx.print_json({"services": [s.to_json() for s in found]})
        return EXIT_OK
    _table(
        ctx.out,
        ["NAME", "KIND", "ENABLED", "CONTENT TYPES", "MAX BYTES", "TIMEOUT S", "DESCRIPTION"],
        [
            [
                s.name,
                s.kind,
                "yes" if s.enabled else "no",
                ",".join(s.content_types),
                str(s.max_input_bytes),
                str(s.timeout_seconds),
                s.description,
            ]
            for s in found
        ],
    )
    return EXIT_OK


def webhook_secret(ctx: Context) -> int:
    key = ctx.client().webhook_secret()
    if ctx.json:
        ctx.print_json({"key": key})
    else:
        print(key, file=ctx.out)
    return EXIT_OK


def webhook_verify(ctx: Context) -> int:
    args = ctx.args
    body = args.body.read_bytes() if args.body is not None else sys.stdin.buffer.read()
    secret = args.secret or os.environ.get(WEBHOOK_SECRET_VARIABLE) or ctx.client().webhook_secret()
    headers = {"webhook-id": args.id, "webhook-timestamp": args.timestamp, "webhook-signature": args.signature}
    prediction = verify_webhook(secret, body, headers)
    if ctx.json:
        ctx.print_json(json.loads(body))
    else:
        print(f"verified {args.id}: prediction {prediction.id} {prediction.status.value}", file=ctx.out)
    return EXIT_OK


# --- the parser ----------------------------------------------------------------------------------------


def _common(ready_file: Path | None) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", help="the API's JSON on standard output, for scripts")
    where = options.add_mutually_exclusive_group()
    where.add_argument("--profile", metavar="NAME", help=f"a profile of {config.config_file()}")
    where.add_argument(
        "--local",
        metavar="READY_FILE",
        nargs="?",
        const=ready_file or True,
        type=Path,
        help="the running `make local` (its ready file; default "
        + (str(ready_file) if ready_file else f"the first {config.READY_FILE_NAME} here or above")
        + ")",
    )
    return options


def add_commands(commands: Any, *, ready_file: Path | None = None) -> None:
    """Add the API's commands to a parser's subcommands (`chorus` adds `admin` beside them).
    `ready_file`: what `--local` reads by default."""
    common = [_common(ready_file)]

    def command(name: str, handler: Callable[[Context], int], help: str, parents: Sequence[Any] = ()) -> Any:
        parser = commands.add_parser(name, parents=[*common, *parents], help=help, description=help)
        parser.set_defaults(run=handler)
        return parser

    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    timeout = argparse.ArgumentParser(add_help=False)
    timeout.add_argument(
        "--timeout", type=_seconds, metavar="S", help="stop waiting after S seconds (exit 1; it goes on running)"
    )

    p = command("predict", predict, "create a prediction (upload a FILE, or --input JSON); --wait for its output",
                [quiet, timeout])  # fmt: skip
    p.add_argument("service", metavar="SERVICE", help="a service of `chorus services`")
    p.add_argument("file", metavar="FILE", nargs="?", type=_input_file, help="the input to upload (- for stdin)")
    p.add_argument("--input", type=_json_value, metavar="JSON", help="inline JSON input (@FILE or - to read it)")
    p.add_argument("--content-type", metavar="TYPE", help="the FILE's content type (default: from its name)")
    p.add_argument("--wait", action="store_true", help="wait for the result, showing progress, and print it")
    p.add_argument("--webhook", metavar="URL", help="POST the finished prediction there, signed (Standard Webhooks)")
    p.add_argument(
        "--metadata", nargs="+", action="extend", type=_metadata_pair, metavar="K=V", help="string metadata to keep"
    )
    p.add_argument("--deadline", type=_deadline, metavar="S", help="cancel it if unfinished after S seconds")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="with --wait: save the output there")
    p.add_argument("--idempotency-key", metavar="KEY", help="the same key and body name the same prediction (24 h)")

    command("get", get, "show a prediction").add_argument("id", metavar="ID")

    p = command("list", list_, "list predictions, newest first")
    p.add_argument("--service", metavar="NAME")
    p.add_argument("--status", choices=[s.value for s in Status], metavar="STATUS", help="e.g. failed, running")
    p.add_argument("--parent-id", metavar="ID", help="an ensemble prediction's steps")
    count = p.add_mutually_exclusive_group()
    count.add_argument("--limit", type=_count, default=20, metavar="N", help="at most N (default 20)")
    count.add_argument("--all", action="store_true", help="every page")
    p.add_argument("--cursor", metavar="CURSOR", help="go on from where a previous listing stopped")

    command("cancel", cancel, "cancel a prediction").add_argument("id", metavar="ID")

    p = command("watch", watch, "follow a prediction until it ends", [quiet, timeout])
    p.add_argument("id", metavar="ID")

    p = command("download", download, "a succeeded prediction's output")
    p.add_argument("id", metavar="ID")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="save it there (default: standard output)")

    command("services", services, "the services predictions can ask for")

    webhooks = commands.add_parser("webhooks", help="the signing secret; verify a webhook").add_subparsers(
        dest="webhooks_action", metavar="ACTION", required=True
    )
    secret = webhooks.add_parser(
        "secret", parents=common, help="the tenant's webhook signing secret (whsec_…)", description="the secret"
    )
    secret.set_defaults(run=webhook_secret)
    verify = webhooks.add_parser(
        "verify",
        parents=common,
        help="verify a webhook's signature; the body comes on standard input",
        description="Verify a webhook with the Standard Webhooks library: exit 0 if it verifies, 1 if not. The "
        f"secret: --secret, else {WEBHOOK_SECRET_VARIABLE}, else the API's (`chorus webhooks secret`).",
    )
    verify.add_argument("--secret", metavar="WHSEC", help="the signing secret")
    verify.add_argument("--id", required=True, metavar="WEBHOOK_ID", help="the webhook-id header")
    verify.add_argument("--timestamp", required=True, metavar="SECONDS", help="the webhook-timestamp header")
    verify.add_argument("--signature", required=True, metavar="SIGNATURES", help="the webhook-signature header")
    verify.add_argument("--body", type=Path, metavar="FILE", help="read the body from FILE, not standard input")
    verify.set_defaults(run=webhook_verify)


def run(args: argparse.Namespace) -> int:
    """Run a parsed command of `add_commands`; its exit code (see the module's docstring)."""
    ctx = Context(args)
    try:
        return int(args.run(ctx))
    except (UsageError, config.ConfigError) as exc:
        return _error(ctx, str(exc), EXIT_USAGE)
    except PredictionFailed as exc:
        return _error(ctx, str(exc), EXIT_PREDICTION_FAILED)
    except ApiError as exc:
        return _error(ctx, f"{exc.code}: {exc.message} (HTTP {exc.status})", EXIT_API_ERROR)
    except WaitTimeout as exc:
        return _error(ctx, f"{exc} (`{PROG} watch {exc.prediction.id}` goes on waiting)", EXIT_FAILED)
    except ChorusClientError as exc:
        return _error(ctx, str(exc), EXIT_FAILED)
    except OSError as exc:
        return _error(ctx, f"{exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        ctx.close()


def _error(ctx: Context, message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=ctx.err)
    return code


def build_parser(
    prog: str = f"{sys.executable} -m chorus_client", ready_file: Path | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True), ready_file=ready_file)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser("python -m chorus_client").parse_args(argv))
