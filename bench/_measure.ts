/**
 * The parent side of the benchmarks (`bench/kv.ts`, `bench/etcd.ts`): runs
 * the load-generator processes (`bench/_load.ts`) for one run, merges their
 * histograms and returns the run's summary (the JSON line both print).
 *
 * @module
 */

import { Histogram } from "./_histogram.ts";
export { freePorts } from "../examples/_util.ts";

const loadScript = new URL("./_load.ts", import.meta.url).pathname;

/** One run of the load generator. */
export interface Run {
  /** Client base URL (the leader). */
  url: string;
  /** `put` or `get`. */
  op: string;
  /** Closed-loop clients in total. */
  concurrency: number;
  /** Length of the run. */
  seconds: number;
  /** Most client processes to spread the clients over. */
  processes: number;
  /** Value size of a PUT. */
  valueBytes: number;
  /** Distinct keys over all processes. */
  keys: number;
  /** The HTTP API to speak (see `bench/_load.ts`); `kv` if absent. */
  api?: "kv" | "etcd";
}

interface LoadResult {
  operations: number;
  errors: number;
  statuses: Record<string, number>;
  seconds: number;
  histogram: { counts: [number, number][]; max: number };
}

/**
 * Parses `put:1,get:64` into runs.
 *
 * @throws {TypeError} naming a part that is not `put:N` or `get:N`.
 */
export function parseRuns(text: string): { op: string; concurrency: number }[] {
  return text.split(",").map((run) => {
    const [op, concurrency] = run.split(":");
    if ((op !== "put" && op !== "get") || !(Number(concurrency) > 0)) {
      throw new TypeError(`Invalid run "${run}": expected put:N or get:N`);
    }
    return { op, concurrency: Number(concurrency) };
  });
}

/** Runs `run` and returns its summary: ops/s and p50/p99/max latency. */
export async function measure(run: Run): Promise<Record<string, unknown>> {
  const { url, op, concurrency, seconds } = run;
  const processes = Math.min(run.processes, concurrency);
  const children = Array.from({ length: processes }, (_, i) => {
    const clients = Math.floor(concurrency / processes) +
      (i < concurrency % processes ? 1 : 0);
    return new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        loadScript,
        url,
        op,
        String(clients),
        String(seconds),
        String(run.valueBytes),
        `k${i}`,
        String(Math.ceil(run.keys / processes)),
        run.api ?? "kv",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  });
  // Let the processes compile and connect, then start them together.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  for (const child of children) {
    const writer = child.stdin.getWriter();
    await writer.write(new Uint8Array([1]));
    await writer.close();
  }
  const outputs = await Promise.all(children.map((child) => child.output()));
  const histogram = new Histogram();
  let operations = 0;
  let errors = 0;
  let elapsed = 0;
  for (const output of outputs) {
    const result = JSON.parse(
      new TextDecoder().decode(output.stdout),
    ) as LoadResult;
    operations += result.operations;
    errors += result.errors;
    elapsed = Math.max(elapsed, result.seconds);
    histogram.merge(result.histogram);
  }
  return {
    op,
    concurrency,
    processes,
    seconds: Number(elapsed.toFixed(2)),
    operations,
    errors,
    opsPerSecond: Math.round(operations / elapsed),
    p50Ms: round(histogram.quantile(0.5)),
    p99Ms: round(histogram.quantile(0.99)),
    maxMs: round(histogram.max),
  };
}

function round(ms: number): number {
  return Number(ms.toFixed(2));
}
