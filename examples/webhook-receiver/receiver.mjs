// A jinliu webhook receiver with no dependencies (Node.js 18+): verifies each delivery's
// Standard Webhooks signature, drops replays and duplicates, prints the event and answers 204.
//
//   WEBHOOK_SECRET=whsec_... node examples/webhook-receiver/receiver.mjs
//
// PORT (default 4000; 0 picks a free port) and HOST (default 127.0.0.1) set where it listens.
// See README.md beside this file for the whole walk-through against `make run`.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const TOLERANCE_SECONDS = 5 * 60;

/** Verifies one delivery; returns the parsed event or throws with the reason. */
export function verify(secret, headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) throw new Error("missing webhook-id, webhook-timestamp or webhook-signature");
  const now = Math.floor(Date.now() / 1000);
  if (!/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("timestamp outside the 5-minute tolerance (replay, or a wrong clock)");
  }
  if (!secret.startsWith("whsec_")) throw new Error("WEBHOOK_SECRET must start with whsec_");
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  // During a secret rotation there are two signatures; any one that matches is enough.
  const ok = signatures.split(" ").some((entry) => {
    const [version, sig] = entry.split(",");
    if (version !== "v1" || !sig) return false;
    const given = Buffer.from(sig, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) throw new Error("no signature matches");
  return JSON.parse(body);
}

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("set WEBHOOK_SECRET to the endpoint's whsec_ secret (shown when the endpoint was created)");
  process.exit(2);
}
// Delivery is at-least-once: the same webhook-id can arrive again. Remember what was handled.
const seen = new Set();

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    // Verify the raw bytes: parsing and re-serialising the JSON would change them.
    const body = Buffer.concat(chunks).toString("utf8");
    let event;
    try {
      event = verify(secret, req.headers, body);
    } catch (e) {
      console.log(`refused ${req.headers["webhook-id"] ?? "-"}: ${e.message}`);
      res.writeHead(400).end();
      return;
    }
    const id = req.headers["webhook-id"];
    if (seen.has(id)) {
      console.log(`duplicate ${id} (already handled)`);
    } else {
      seen.add(id);
      console.log(`verified ${event.type} ${event.id} ${JSON.stringify(event.data)}`);
    }
    res.writeHead(204).end();
  });
});

const port = Number(process.env.PORT ?? 4000);
server.listen(port, process.env.HOST ?? "127.0.0.1", () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}/`);
});
