"""The local stack's tenant and API token: `make local` works without any set-up.

After provisioning, tenant `local` gets a token with every scope (`admin`, `predictions:create`,
`predictions:read`): CHORUS_API_TOKEN if set (it must look like chr_<12 hex>_<43 URL-safe
characters>), else a new one. Its webhook signing secret is the stack's (CHORUS_WEBHOOK_SECRET if
set, else a new one: the banner's and the ready file's `webhook_secret`), and it may e-mail anyone
at example.com. Its usage plan (on the local REST API's stage) is generous, so a developer's own
traffic never meets it: LOCAL_LIMITS. The product's own `chorus.adapters.tenants` stores them, run
as a CLI would: in a child process with the layer on its path, the tables' names in TENANTS_TABLE,
TOKENS_TABLE and AUDIT_TABLE, the API stage in REST_API_ID and API_STAGE, and AWS_ENDPOINT_URL
pointing at the stack (so the stack's process environment and cached clients are left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

LOCAL_TENANT = "local"
API_TOKEN_ENV = "CHORUS_API_TOKEN"
TENANTS_TABLE, TOKENS_TABLE, AUDIT_TABLE = "TenantsTable", "TokensTable", "AuditTable"  # logical ids
WEBHOOK_SECRET_ENV = "CHORUS_LOCAL_TENANT_WEBHOOK_SECRET"  # to the child process only
LOCAL_EMAIL_RECIPIENTS = ("@example.com",)
LOCAL_LIMITS = {"rate_limit": 1000.0, "burst_limit": 2000}  # no daily quota
TOKEN_FORMAT = "chr_<12 hex characters>_<43 URL-safe base64 characters>"


class ApiTokenError(Exception):
    """The tenant or token could not be created (a malformed CHORUS_API_TOKEN, say)."""


def create_local_token(
    repo_root: Path,
    endpoint_url: str,
    region: str,
    tenants_table: str,
    tokens_table: str,
    audit_table: str,
    webhook_secret: str,
    token: str = "",
    *,
    api_stage: tuple[str, str],
) -> str:
    """Create tenant `local` (signing webhooks with `webhook_secret`, its usage plan on the REST
    API stage `api_stage`, (api id, stage)) and its all-scopes token (`token`, or a new one);
    returns the token."""
    environment = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    python_path = [str(repo_root / "layers" / "chorus"), str(repo_root)]
    if environment.get("PYTHONPATH"):
        python_path.append(environment["PYTHONPATH"])
    environment.update(
        PYTHONPATH=os.pathsep.join(python_path),
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_DEFAULT_REGION=region,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        TENANTS_TABLE=tenants_table,
        TOKENS_TABLE=tokens_table,
        AUDIT_TABLE=audit_table,
        REST_API_ID=api_stage[0],
        API_STAGE=api_stage[1],
        POWERTOOLS_SERVICE_NAME="chorus",
        **{API_TOKEN_ENV: token, WEBHOOK_SECRET_ENV: webhook_secret},
    )
    completed = subprocess.run(
        [sys.executable, "-m", "chorus_local.tenancy"],
        env=environment,
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ApiTokenError(completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed")
    return str(json.loads(completed.stdout)["token"])


def _main() -> int:  # pragma: no cover - runs in the child process
    from chorus.adapters import tenants, tokens
    from chorus.core.errors import ChorusError
    from chorus.model.tenancy import Limits, Scope, parse_token

    supplied = os.environ.get(API_TOKEN_ENV, "").strip()
    if supplied and parse_token(supplied) is None:
        print(f"{API_TOKEN_ENV} is not an API token: expected {TOKEN_FORMAT}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(tenants.TenantExists):  # a stack is empty at start; harmless if not
            tenants.create_tenant(
                LOCAL_TENANT,
                created_by="make local",
                limits=Limits.model_validate(LOCAL_LIMITS),
                email_recipients=LOCAL_EMAIL_RECIPIENTS,
                webhook_secret=os.environ[WEBHOOK_SECRET_ENV],
            )
        _, plaintext = tokens.create_token(
            LOCAL_TENANT, [Scope.ADMIN, Scope.CREATE, Scope.READ], created_by="make local", secret_token=supplied
        )
    except ChorusError as error:
        print(f"the local API token could not be created: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"token": plaintext}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
