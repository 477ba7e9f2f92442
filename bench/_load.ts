/**
 * One load-generator process of the benchmark: closed-loop clients, each
 * on its own keep-alive connection, for a fixed time. Prints one JSON line
 * with the operation count, errors and a latency histogram.
 *
 * Run: `deno run -A bench/_load.ts URL put|get CLIENTS SECONDS VALUE_BYTES
 * KEY_PREFIX KEYS [API]`
 *
 * `API` is `kv` (the default: `PUT`/`GET /kv/{key}` of `examples/kv.ts`) or
 * `etcd` (etcd's v3 JSON gateway: `POST /v3/kv/put` with
 * `{"key", "value"}` and `POST /v3/kv/range` with `{"key"}`, base64-encoded;
 * a range is linearizable by default).
 *
 * @module
 */

import { HttpConnection } from "./_http_client.ts";
import { Histogram } from "./_histogram.ts";

const [
  url,
  op,
  clientsText,
  secondsText,
  valueBytesText,
  prefix,
  keysText,
  api = "kv",
] = Deno.args;
if (
  !url || (op !== "put" && op !== "get") || !prefix ||
  (api !== "kv" && api !== "etcd")
) {
  console.error(
    "usage: _load.ts URL put|get CLIENTS SECONDS VALUE KEY KEYS [kv|etcd]",
  );
  Deno.exit(2);
}
const clients = Number(clientsText);
const seconds = Number(secondsText);
const valueText = "v".repeat(Number(valueBytesText));
const value = new TextEncoder().encode(valueText);
const keys = Number(keysText);

/** One request of the run: method, path and body. */
type Request = [method: string, path: string, body?: Uint8Array];

const encoder = new TextEncoder();
const valueBase64 = btoa(valueText);
/** The request for `op` on `key` in the chosen API. */
const requestFor: (key: string) => Request = api === "kv"
  ? (key) => op === "put" ? ["PUT", `/kv/${key}`, value] : ["GET", `/kv/${key}`]
  : op === "put"
  ? (key) => [
    "POST",
    "/v3/kv/put",
    encoder.encode(`{"key":"${btoa(key)}","value":"${valueBase64}"}`),
  ]
  : (key) => [
    "POST",
    "/v3/kv/range",
    encoder.encode(`{"key":"${btoa(key)}"}`),
  ];

const histogram = new Histogram();
const statuses: Record<string, number> = {};
let operations = 0;
let errors = 0;

async function client(number: number): Promise<void> {
  const connection = await HttpConnection.open(url!);
  const stopAt = performance.now() + seconds * 1000;
  let sequence = number;
  try {
    while (performance.now() < stopAt) {
      const request = requestFor(`${prefix}-${sequence % keys}`);
      sequence += clients;
      const started = performance.now();
      const reply = await connection.request(...request);
      const latency = performance.now() - started;
      statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
      if (reply.status === 200 || (op === "get" && reply.status === 404)) {
        operations++;
        histogram.record(latency);
      } else {
        errors++;
      }
    }
  } finally {
    connection.close();
  }
}

// Wait for the parent's go so that every process starts at once.
await Deno.stdin.read(new Uint8Array(1));
const started = performance.now();
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (performance.now() - started) / 1000;
console.log(JSON.stringify({
  operations,
  errors,
  statuses,
  seconds: elapsed,
  histogram: histogram.toJSON(),
}));
