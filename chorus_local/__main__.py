"""`python -m chorus_local`: serve the whole of Chorus locally until Ctrl-C / SIGTERM.

    python -m chorus_local [--api-port 3000] [--aws-port 4566]
                           [--parameter-overrides Stage=local RegistryFile=/path/registry.json]
                           [--endpoints chorus_local/endpoints.json] [--extra-endpoints FILE]
                           [--workers 2] [--async-retry-delays 1,2] [--ready-file PATH]
                           [--exit-with-parent] [--verbose]

`--ready-file` receives {"api_url", "aws_endpoint_url", "webhook_secret", "api_token",
"resources"} once everything answers (tests wait for it); `resources` maps every created
resource's logical id to its physical name (a table's name, a queue's URL, a topic's ARN).
Tenant `local`'s webhook signing secret comes from CHORUS_WEBHOOK_SECRET, its API token (every
scope) from CHORUS_API_TOKEN; either is generated when unset, and both are printed.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from types import FrameType

from chorus_local.cloudformation import TemplateError
from chorus_local.stack import LocalStack
from chorus_local.tenancy import API_TOKEN_ENV, ApiTokenError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _parse_overrides(values: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values:
        # `sam deploy` style "K=V K2=V2" in one argument, or one K=V per argument.
        for pair in item.split():
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise argparse.ArgumentTypeError(f"parameter override {pair!r} is not KEY=VALUE")
            overrides[key] = value
    return overrides


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chorus_local", description=__doc__.split("\n")[0])
    parser.add_argument("--api-port", type=int, default=3000, help="REST API port (0: any free port)")
    parser.add_argument("--aws-port", type=int, default=4566, help="AWS endpoint port (0: any free port)")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter values, like sam --parameter-overrides",
    )
    parser.add_argument(
        "--endpoints", type=Path, default=None, help="SageMaker endpoints file (default chorus_local/endpoints.json)"
    )
    parser.add_argument(
        "--extra-endpoints",
        type=Path,
        action="append",
        default=[],
        help="additional endpoints file (repeatable), e.g. test models",
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=REPO_ROOT / "template.yaml",
        help="the SAM template to run (like sam -t): e.g. one generated for your own registry by "
        "`python -m chorus_compiler --registry R --out DIR/statemachines --template DIR/template.yaml`",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per function")
    parser.add_argument(
        "--async-retry-delays",
        default="1,2",
        metavar="SECONDS,...",
        help="waits before the retries of failed asynchronous invocations (Lambda: 1 min, 2 min)",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="write {api_url, aws_endpoint_url, webhook_secret, api_token, resources} here when ready",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the launching process dies (tests: no stack outlives a killed pytest)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging (what was not created)")
    return parser.parse_args(argv)


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[local] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # One line per request from moto's server and botocore's chatter would drown the functions.
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "moto", "cfnlint", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _services(api_url: str, token: str | None) -> str:
    request = urllib.request.Request(f"{api_url}/v1/services")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as error:
        return f"  (GET /services failed: {error})"
    services = body.get("services", body) if isinstance(body, dict) else body
    lines = []
    for service in services if isinstance(services, list) else []:
        if isinstance(service, dict):
            kinds = ", ".join(service.get("contentTypes", service.get("accepts", [])) or [])
            lines.append(f"  {service.get('name')} ({service.get('kind')}) {kinds}".rstrip())
    return "\n".join(lines) or f"  {json.dumps(body)[:300]}"


def _banner(stack: LocalStack) -> str:
    aws = stack.aws_endpoint_url
    assert stack.provisioned is not None
    table = stack.provisioned.outputs.get("PredictionsTableName", "<table>")
    api = stack.api_url if stack.provisioned.api else "(no REST API)"
    token = stack.api_token
    token_lines = (
        f"""  API token      {token}   (tenant local, every scope)

  export {API_TOKEN_ENV}={token}
  curl -H "Authorization: Bearer ${API_TOKEN_ENV}" {api}/v1/services
"""
        if token
        else "  API token      (none: the template has no TenantsTable/TokensTable)\n"
    )
    return f"""
Chorus local stack is up ({stack.startup_seconds:.1f} s)
  REST API       {api}/v1   (also without the /v1 prefix)
  AWS endpoint   {aws}   (S3, DynamoDB, SQS, SNS, SES, SSM, KMS, Step Functions, API Gateway, Lambda, SageMaker runtime)
  webhook secret {stack.webhook_secret}   (tenant local's)
{token_lines}
  aws --endpoint-url {aws} s3 ls
  aws --endpoint-url {aws} dynamodb scan --table-name {table}
  python -c "import boto3; print(boto3.client('s3', endpoint_url='{aws}', region_name='us-east-1',
             aws_access_key_id='testing', aws_secret_access_key='testing').list_buckets())"

Services:
{_services(stack.api_url, token) if stack.provisioned.api else "  (no REST API)"}

Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    _configure_logging(args.verbose)
    extra = []
    if args.extra_endpoints:
        from chorus_local.sagemaker import load_endpoint_configs

        for path in args.extra_endpoints:
            extra.extend(load_endpoint_configs(path))
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = LocalStack(
        REPO_ROOT,
        api_port=args.api_port,
        aws_port=args.aws_port,
        parameter_overrides=_parse_overrides(args.parameter_overrides),
        endpoints_file=args.endpoints,
        extra_endpoints=extra,
        workers_per_function=args.workers,
        async_retry_delays=[float(delay) for delay in args.async_retry_delays.split(",") if delay],
        template=str(args.template.resolve()),
    )
    try:
        try:
            stack.start()
        except TemplateError as error:
            print(f"template.yaml cannot run locally: {error}", file=sys.stderr, flush=True)
            return 2
        except ApiTokenError as error:
            print(str(error), file=sys.stderr, flush=True)
            return 2
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            print(f"{error}: choose other ports with --api-port / --aws-port", file=sys.stderr, flush=True)
            return 2
        print(_banner(stack), flush=True)
        if args.ready_file is not None:
            ready = {
                "api_url": stack.api_url if stack.provisioned and stack.provisioned.api else None,
                "aws_endpoint_url": stack.aws_endpoint_url,
                "webhook_secret": stack.webhook_secret,
                "api_token": stack.api_token,
                "resources": stack.physical_resources(),
            }
            temporary = args.ready_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(ready))
            temporary.replace(args.ready_file)  # atomic: a reader never sees half a file
        parent = os.getppid()
        while not stop.wait(1.0):
            if args.exit_with_parent and os.getppid() != parent:
                logging.getLogger("chorus_local").warning("the launching process is gone")
                break
    finally:
        logging.getLogger("chorus_local").info("stopping")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
