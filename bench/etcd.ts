/**
 * The same benchmark as `bench/kv.ts`, against etcd: the peer lilraft is
 * compared with.
 *
 * Starts a three-member etcd cluster as three processes on 127.0.0.1 with
 * their data in a temporary directory (fsync on, etcd's default), waits until
 * every member is healthy, finds the leader, then drives the leader's v3 JSON
 * gateway with the same closed-loop load generator (`bench/_load.ts` in its
 * `etcd` mode): `POST /v3/kv/put` for PUT, `POST /v3/kv/range` (linearizable,
 * the default) for GET. Prints one JSON line per run in the format of
 * `bench/kv.ts`. Stops etcd and removes the directory at the end, also on
 * failure or SIGINT/SIGTERM.
 *
 * Run: `deno task bench:etcd [--seconds 10] [--runs put:1,put:16,put:64,get:64]
 * [--processes 2] [--dir PARENT] [--value-bytes 128] [--keys 10000]
 * [--etcd PATH]`
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
    etcd: { type: "string", default: "etcd" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(
    "deno task bench:etcd [--seconds 10] [--runs put:1,put:16,put:64,get:64]\n" +
      "  [--processes 2] [--dir PARENT] [--value-bytes 128] [--keys 10000]\n" +
      "  [--etcd PATH]  (the etcd binary; default: etcd on the PATH)",
  );
  Deno.exit(0);
}

const seconds = Number(values.seconds);
const processesMax = Number(values.processes);
const valueBytes = Number(values["value-bytes"]);
const keys = Number(values.keys);
const runs = parseRuns(values.runs);

interface Member {
  id: number;
  clientUrl: string;
  process: Deno.ChildProcess;
  log: string;
}

function startMembers(root: string): Member[] {
  const ports = freePorts(6);
  const peerUrls = ports.slice(0, 3).map((port) => `http://127.0.0.1:${port}`);
  const clientUrls = ports.slice(3).map((port) => `http://127.0.0.1:${port}`);
  const cluster = peerUrls.map((url, i) => `m${i + 1}=${url}`).join(",");
  const token = `lilraft-bench-${Date.now()}`;
  return clientUrls.map((clientUrl, i) => {
    const id = i + 1;
    const log = `${root}/m${id}.log`;
    const process = new Deno.Command(values.etcd, {
      args: [
        "--name",
        `m${id}`,
        "--data-dir",
        `${root}/m${id}`,
        "--listen-client-urls",
        clientUrl,
        "--advertise-client-urls",
        clientUrl,
        "--listen-peer-urls",
        peerUrls[i]!,
        "--initial-advertise-peer-urls",
        peerUrls[i]!,
        "--initial-cluster",
        cluster,
        "--initial-cluster-token",
        token,
        "--initial-cluster-state",
        "new",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Keep etcd's log for the error report; draining it also keeps a full
    // pipe from ever blocking etcd.
    const file = Deno.openSync(log, { write: true, create: true });
    process.stderr.pipeTo(file.writable).catch(() => {});
    return { id, clientUrl, process, log };
  });
}

async function post(url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, {
    method: "POST",
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  return await response.json();
}

async function healthy(member: Member): Promise<boolean> {
  try {
    const response = await fetch(`${member.clientUrl}/health`);
    const body = await response.json() as { health?: string };
    return response.ok && body.health === "true";
  } catch {
    return false;
  }
}

/** Waits until every member is healthy and they agree on one leader. */
async function waitForLeader(members: Member[]): Promise<Member> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const health = await Promise.all(members.map(healthy));
    if (health.every(Boolean)) {
      try {
        const statuses = await Promise.all(
          members.map((member) =>
            post(`${member.clientUrl}/v3/maintenance/status`, {}) as Promise<
              { header: { member_id: string }; leader: string }
            >
          ),
        );
        const leaders = new Set(statuses.map((status) => status.leader));
        const index = statuses.findIndex((status) =>
          status.header.member_id === status.leader
        );
        if (leaders.size === 1 && index >= 0) return members[index]!;
      } catch {
        // Not ready yet.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("etcd: no healthy cluster with a leader within 30 s");
}

const root = await Deno.makeTempDir({
  prefix: "lilraft-bench-etcd-",
  ...(values.dir ? { dir: values.dir } : {}),
});
let members: Member[] = [];
let cleaning: Promise<void> | undefined;

/** Stops etcd (SIGTERM, SIGKILL after 5 s) and removes the directory. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const member of members) {
      try {
        member.process.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }
    // A leader whose followers are gone may wait to hand over; data is
    // thrown away anyway, so do not wait long.
    const timer = setTimeout(() => {
      for (const member of members) {
        try {
          member.process.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }, 5000);
    await Promise.all(members.map((member) => member.process.status));
    clearTimeout(timer);
    await Deno.remove(root, { recursive: true });
  })();
  return cleaning;
}

const signals = ["SIGINT", "SIGTERM"] as const;
function onSignal(): void {
  cleanUp().finally(() => Deno.exit(130));
}
for (const signal of signals) Deno.addSignalListener(signal, onSignal);

let failed = false;
try {
  members = startMembers(root);
  const leader = await waitForLeader(members);
  for (const { op, concurrency } of runs) {
    const result = await measure({
      url: leader.clientUrl,
      op,
      concurrency,
      seconds,
      processes: processesMax,
      valueBytes,
      keys,
      api: "etcd",
    });
    if (cleaning) break; // Interrupted: etcd was stopped under the run.
    console.log(JSON.stringify({ ...result, leader: leader.id }));
  }
} catch (error) {
  failed = true;
  // After SIGINT/SIGTERM the clean-up has stopped etcd under the runs.
  if (cleaning) await new Promise(() => {});
  console.error(
    error instanceof Deno.errors.NotFound && members.length === 0
      ? `etcd binary "${values.etcd}" not found; pass --etcd PATH`
      : error,
  );
  for (const member of members) {
    const text = await Deno.readTextFile(member.log).catch(() => "");
    const tail = text.trimEnd().split("\n").slice(-10).join("\n");
    console.error(`--- etcd m${member.id} log (last lines) ---\n${tail}`);
  }
} finally {
  await cleanUp();
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
}
if (failed) Deno.exit(1);
