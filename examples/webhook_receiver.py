"""Receive Chorus webhooks, verified with the Standard Webhooks library (docs/webhooks.md).

    pip install standardwebhooks
    export CHORUS_WEBHOOK_SECRET=whsec_...   # GET /v1/webhooks/secret, or `chorus webhooks secret`
    python examples/webhook_receiver.py --port 8000

Point a prediction's callback at it: `"callback": {"type": "webhook", "url": "https://<host>/webhooks"}`.
For each verified delivery it prints one JSON line, {"webhookId", "event", "id", "status",
"output"?, "error"?}, and answers 204; a delivery that does not verify (wrong secret, altered
body, a timestamp more than 5 minutes off, missing headers) is answered 400 and not printed.
A `webhook-id` seen before (a retry, a redelivery) is answered 204 again and not handled twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 1024 * 1024  # a prediction's representation is small; refuse anything larger


def handle(webhook_id: str, prediction: dict[str, Any]) -> None:
    """What your application does with a verified webhook; here, one line on stdout."""
    line = {
        "webhookId": webhook_id,
        # msg_<id>_start, msg_<id>_completed, msg_<id>_step_<step id>
        "event": webhook_id.removeprefix(f"msg_{prediction['id']}_").split("_")[0],
        "id": prediction["id"],
        "status": prediction["status"],
    }
    line |= {key: prediction[key] for key in ("output", "error") if key in prediction}
    print(json.dumps(line), flush=True)


def receiver(secret: str) -> type[BaseHTTPRequestHandler]:
    webhook = Webhook(secret)
    seen: set[str] = set()  # webhook-ids handled; keep them in your database, for as long as retries last (~28 h)

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)  # verify the exact bytes received, before any parsing
            try:
                prediction = webhook.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError):  # ValueError: a malformed signature header
                self._answer(400)
                return
            webhook_id = self.headers["webhook-id"]
            if webhook_id not in seen:
                seen.add(webhook_id)
                handle(webhook_id, prediction)
            self._answer(204)  # answer fast: Chorus waits at most WebhookAttemptSeconds (10 s)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            print(format % args, file=sys.stderr)

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    args = parser.parse_args()
    secret = os.environ.get("CHORUS_WEBHOOK_SECRET")
    if not secret:
        parser.error("set CHORUS_WEBHOOK_SECRET to your tenant's webhook secret (whsec_...)")
    server = ThreadingHTTPServer((args.host, args.port), receiver(secret))
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
