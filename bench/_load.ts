/**
 * One load-generator process of the benchmark: closed-loop clients, each
 * on its own keep-alive connection, for a fixed time. Prints one JSON line
 * with the operation count, errors and a latency histogram.
 *
 * Run: `deno run -A bench/_load.ts URL put|get CLIENTS SECONDS VALUE_BYTES
 * KEY_PREFIX KEYS`
 *
 * @module
 */

import { HttpConnection } from "./_http_client.ts";
import { Histogram } from "./_histogram.ts";

const [url, op, clientsText, secondsText, valueBytesText, prefix, keysText] =
  Deno.args;
if (!url || (op !== "put" && op !== "get") || !prefix) {
  console.error("usage: _load.ts URL put|get CLIENTS SECONDS VALUE KEY KEYS");
  Deno.exit(2);
}
const clients = Number(clientsText);
const seconds = Number(secondsText);
const value = new TextEncoder().encode("v".repeat(Number(valueBytesText)));
const keys = Number(keysText);

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
      const path = `/kv/${prefix}-${sequence % keys}`;
      sequence += clients;
      const started = performance.now();
      const reply = op === "put"
        ? await connection.request("PUT", path, value)
        : await connection.request("GET", path);
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
