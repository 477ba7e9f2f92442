/**
 * Benchmark of the replicated key-value service (`examples/kv.ts`).
 *
 * Starts a three-node cluster as three processes with their data on disk,
 * then drives closed-loop clients over keep-alive HTTP against the leader
 * for a fixed time per run, and prints one JSON line per run with ops/s and
 * p50/p99/max latency. The load comes from several client processes so that
 * the generator is not the bottleneck. Stops everything at the end.
 *
 * Run: `deno task bench [--seconds 10] [--runs put:1,put:16,put:64,get:64]
 * [--processes 2] [--dir PARENT] [--value-bytes 128] [--cpu-prof DIR]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { freePorts, measure, parseRuns } from "./_measure.ts";

const { values } = parseArgs({
  args: Deno.args,
  strict: true,
  options: {
    seconds: { type: "string", default: "10" },
    runs: { type: "string", default: "put:1,put:16,put:64,get:64" },
    processes: { type: "string", default: "2" },
    dir: { type: "string" },
    "value-bytes": { type: "string", default: "128" },
    keys: { type: "string", default: "10000" },
    "cpu-prof": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(
    "deno task bench [--seconds 10] [--runs put:1,put:16,put:64,get:64]\n" +
      "  [--processes 2] [--dir PARENT] [--value-bytes 128] [--keys 10000]\n" +
      "  [--cpu-prof DIR]  (profiles every node into DIR)",
  );
  Deno.exit(0);
}

const seconds = Number(values.seconds);
const processesMax = Number(values.processes);
const valueBytes = Number(values["value-bytes"]);
const keys = Number(values.keys);
const runs = parseRuns(values.runs);

const kvScript = new URL("../examples/kv.ts", import.meta.url).pathname;

interface Node {
  id: number;
  url: string;
  process: Deno.ChildProcess;
}

function startNodes(root: string): Node[] {
  const urls = freePorts(3).map((port) => `http://127.0.0.1:${port}`);
  const cluster = urls.map((url, i) => `${i + 1}=${url}`).join(",");
  return urls.map((url, i) => {
    const id = i + 1;
    const profile = values["cpu-prof"]
      ? [`--cpu-prof`, `--cpu-prof-dir=${values["cpu-prof"]}`]
      : [];
    const args = [
      "run",
      "-A",
      ...profile,
      kvScript,
      "--id",
      String(id),
      "--cluster",
      cluster,
      "--dir",
      `${root}/node-${id}`,
    ];
    const process = new Deno.Command(Deno.execPath(), {
      args,
      stdout: "null",
      stderr: "null",
    }).spawn();
    return { id, url, process };
  });
}

async function status(url: string): Promise<{ role: string } | null> {
  try {
    const response = await fetch(`${url}/status`);
    return await response.json();
  } catch {
    return null;
  }
}

async function waitForLeader(nodes: Node[]): Promise<Node> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    for (const node of nodes) {
      if ((await status(node.url))?.role === "leader") return node;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("No leader within 20 s");
}

const root = await Deno.makeTempDir({
  prefix: "lilraft-bench-kv-",
  ...(values.dir ? { dir: values.dir } : {}),
});
const nodes = startNodes(root);
try {
  const leader = await waitForLeader(nodes);
  for (const { op, concurrency } of runs) {
    const result = await measure({
      url: leader.url,
      op,
      concurrency,
      seconds,
      processes: processesMax,
      valueBytes,
      keys,
    });
    console.log(JSON.stringify({ ...result, leader: leader.id }));
  }
} finally {
  for (const node of nodes) {
    try {
      node.process.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  await Promise.all(nodes.map((node) => node.process.status));
  await Deno.remove(root, { recursive: true });
}
