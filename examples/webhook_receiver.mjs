// Receive Chorus webhooks, verified with the Standard Webhooks library (docs/webhooks.md).
//
//   npm ci --prefix examples                   # installs standardwebhooks (examples/package.json)
//   export CHORUS_WEBHOOK_SECRET=whsec_...     # GET /v1/webhooks/secret, or `chorus webhooks secret`
//   node examples/webhook_receiver.mjs --port 8000
//
// For each verified delivery it prints one JSON line, {"webhookId", "event", "id", "status",
// "output"?, "error"?}, and answers 204; a delivery that does not verify (wrong secret, altered
// body, a timestamp more than 5 minutes off, missing headers) is answered 400 and not printed.
// A webhook-id seen before (a retry, a redelivery) is answered 204 again and not handled twice.

import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";

const MAX_BODY_BYTES = 1024 * 1024; // a prediction's representation is small; refuse anything larger

const { values: args } = parseArgs({
  options: { host: { type: "string", default: "127.0.0.1" }, port: { type: "string", default: "8000" } },
});
const secret = process.env.CHORUS_WEBHOOK_SECRET;
if (!secret) {
  console.error("set CHORUS_WEBHOOK_SECRET to your tenant's webhook secret (whsec_...)");
  process.exit(2);
}
const webhook = new Webhook(secret);
const seen = new Set(); // webhook-ids handled; keep them in your database, for as long as retries last (~28 h)

// What your application does with a verified webhook; here, one line on stdout.
function handle(webhookId, prediction) {
  const line = {
    webhookId,
    // msg_<id>_start, msg_<id>_completed, msg_<id>_step_<step id>
    event: webhookId.slice(`msg_${prediction.id}_`.length).split("_")[0],
    id: prediction.id,
    status: prediction.status,
  };
  for (const key of ["output", "error"]) {
    if (key in prediction) line[key] = prediction[key];
  }
  console.log(JSON.stringify(line));
}

function answer(response, status) {
  response.writeHead(status, { "content-length": "0" });
  response.end();
}

const server = createServer((request, response) => {
  if (request.method !== "POST") return answer(response, 405);
  const chunks = [];
  let size = 0;
  request.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      answer(response, 413);
      request.destroy();
    } else {
      chunks.push(chunk);
    }
  });
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8"); // verify the exact bytes received
    let prediction;
    try {
      prediction = webhook.verify(body, request.headers);
    } catch {
      return answer(response, 400); // WebhookVerificationError, or a malformed header
    }
    const webhookId = request.headers["webhook-id"];
    if (!seen.has(webhookId)) {
      seen.add(webhookId);
      handle(webhookId, prediction);
    }
    answer(response, 204); // answer fast: Chorus waits at most WebhookAttemptSeconds (10 s)
  });
});

server.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  console.error(`listening on http://${address}:${port}/`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
