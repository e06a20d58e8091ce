// Verifies deliveries with the Standard Webhooks reference library for JavaScript (npm
// `standardwebhooks`), as a receiver would: reads a JSON array of {secret, headers, body} on
// stdin (body: the raw request body as received, as text) and prints a JSON array with, for
// each, {"ok": true, "payload": <the parsed body>} or {"ok": false, "error": "<message>"}.
"use strict";
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ secret, headers, body }) => {
    try {
      return { ok: true, payload: new Webhook(secret).verify(body, headers) };
    } catch (e) {
      return { ok: false, error: String(e.message) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
