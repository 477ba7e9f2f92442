/**
 * Black-box tests of the key-value service `examples/kv.ts`: every node is
 * its own process, driven over HTTP on loopback like an outside client.
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { freePorts, waitUntil as waitFor } from "./_helpers.ts";

const kvScript = new URL("../examples/kv.ts", import.meta.url).pathname;

// ------------------------------------------------------------- helpers

/** One kv.ts process. */
class KvNode {
  readonly id: number;
  readonly url: string;
  readonly dir: string;
  readonly cluster: string;
  #process: Deno.ChildProcess | undefined;
  #stderr: Promise<string> = Promise.resolve("");

  constructor(id: number, url: string, dir: string, cluster: string) {
    this.id = id;
    this.url = url;
    this.dir = dir;
    this.cluster = cluster;
  }

  get pid(): number {
    return this.#process!.pid;
  }

  /** Starts the process; `recover` adds `--recover`, `join` `--join`. */
  start(recover = false, join = false): void {
    const args = ["--id", String(this.id), "--cluster", this.cluster];
    args.push("--dir", this.dir, ...(recover ? ["--recover"] : []));
    if (join) args.push("--join");
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", kvScript, ...args],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderr = drain(this.#process.stderr);
  }

  /** Sends `signal` to the process, if it is running. */
  signal(signal: Deno.Signal): void {
    try {
      this.#process?.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /** Kills with `signal` and waits for the exit; returns stderr. */
  async stop(signal: Deno.Signal = "SIGKILL"): Promise<string> {
    if (!this.#process) return "";
    this.signal("SIGCONT");
    this.signal(signal);
    await this.#process.status;
    this.#process = undefined;
    return await this.#stderr;
  }

  /** Sends one request; returns status, body and headers. */
  async request(
    method: string,
    path: string,
    body?: BodyInit,
  ): Promise<Reply> {
    const response = await fetch(this.url + path, {
      method,
      ...(body !== undefined && { body }),
      signal: AbortSignal.timeout(15_000),
    });
    return {
      status: response.status,
      body: await response.text(),
      headers: response.headers,
    };
  }

  /** The node's `/status`, or null when it does not answer. */
  async status(): Promise<Status | null> {
    try {
      const reply = await this.request("GET", "/status");
      return reply.status === 200 ? JSON.parse(reply.body) : null;
    } catch {
      return null;
    }
  }
}

interface Reply {
  status: number;
  body: string;
  headers: Headers;
}

interface Status {
  id: number;
  role: string;
  term: number;
  leader: number | null;
  commitIndex: number;
  appliedIndex: number;
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) text += decoder.decode(chunk);
  return text;
}

/** A cluster of kv.ts processes with data in a temporary directory. */
class KvCluster {
  readonly root: string;
  readonly nodes: KvNode[];

  private constructor(root: string, nodes: KvNode[]) {
    this.root = root;
    this.nodes = nodes;
  }

  static async start(size = 3): Promise<KvCluster> {
    const root = await Deno.makeTempDir({ prefix: "lilraft-kv-test-" });
    const urls = freePorts(size).map((port) => `http://127.0.0.1:${port}`);
    const cluster = urls.map((url, i) => `${i + 1}=${url}`).join(",");
    const nodes = urls.map((url, i) =>
      new KvNode(i + 1, url, `${root}/node-${i + 1}`, cluster)
    );
    for (const node of nodes) node.start();
    return new KvCluster(root, nodes);
  }

  node(id: number): KvNode {
    return this.nodes.find((node) => node.id === id)!;
  }

  /** Waits for a leader that every node in `among` agrees on. */
  async leader(among = this.nodes): Promise<KvNode> {
    return await waitFor(async () => {
      const statuses = await Promise.all(among.map((node) => node.status()));
      const leader = statuses.find((status) => status?.role === "leader");
      if (!leader) return undefined;
      const agree = statuses.filter((status) =>
        status?.leader === leader.id && status.term === leader.term
      );
      return agree.length === among.length ? this.node(leader.id) : undefined;
    }, "a leader that every node agrees on");
  }

  /** Kills every process and removes the data. */
  async close(): Promise<void> {
    const logs = await Promise.all(this.nodes.map((node) => node.stop()));
    await Deno.remove(this.root, { recursive: true });
    if (Deno.env.get("KV_TEST_LOGS")) console.error(logs.join("\n"));
  }
}

async function withCluster(
  run: (cluster: KvCluster) => Promise<void>,
): Promise<void> {
  const cluster = await KvCluster.start();
  try {
    await run(cluster);
  } finally {
    await cluster.close();
  }
}

async function runKv(args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", kvScript, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

// --------------------------------------------------------- command line

Deno.test("kv.ts --help explains every flag and exits 0", async () => {
  const output = await runKv(["--help"]);
  const text = new TextDecoder().decode(output.stdout);
  equal(output.code, 0);
  for (const flag of ["--id", "--cluster", "--dir", "--recover", "--help"]) {
    ok(text.includes(flag), `help mentions ${flag}`);
  }
});

Deno.test("kv.ts exits 2 with a message on bad flags", async () => {
  const cluster = "1=http://127.0.0.1:7001,2=http://127.0.0.1:7002";
  const cases: [string[], string][] = [
    [["--bogus"], "Unknown option"],
    [["--cluster", cluster, "--dir", "d"], "Missing flag --id"],
    [["--id", "1", "--dir", "d"], "Missing flag --cluster"],
    [["--id", "1", "--cluster", cluster], "Missing flag --dir"],
    [["--id", "x", "--cluster", cluster, "--dir", "d"], "Invalid --id"],
    [["--id", "3", "--cluster", cluster, "--dir", "d"], "not in --cluster"],
    [["--id", "1", "--cluster", "1=", "--dir", "d"], "expected ID=URL"],
    [["--id", "1", "--cluster", "1:7001", "--dir", "d"], "expected ID=URL"],
    [["--id", "1", "--cluster", "1=nope", "--dir", "d"], "not a URL"],
    [["--id", "1", "--cluster", "0=http://a:1", "--dir", "d"], "cluster id"],
    [["--id", "1", "--cluster", "1=ftp://a:1", "--dir", "d"], "http://"],
    [
      ["--id", "1", "--cluster", "1=http://a:1,1=http://a:2", "--dir", "d"],
      "appears twice",
    ],
    [["--id", "1", "--cluster", cluster, "--dir", "d", "extra"], "positional"],
  ];
  const outputs = await Promise.all(cases.map(([args]) => runKv(args)));
  for (const [position, output] of outputs.entries()) {
    const [args, message] = cases[position]!;
    const stderr = new TextDecoder().decode(output.stderr);
    equal(output.code, 2, `exit code of ${args.join(" ")}: ${stderr}`);
    ok(stderr.includes(message), `"${message}" in: ${stderr}`);
  }
});

// ------------------------------------------------------------ contract

Deno.test("kv API: the whole contract with every status code", async () => {
  await withCluster(async (cluster) => {
    const leader = await cluster.leader();
    const [follower, other] = cluster.nodes.filter((n) => n !== leader);

    // Writes through a follower are forwarded; another node reads them.
    deepEqual(await statusOf(follower!.request("PUT", "/kv/a", "one")), 200);
    await expectValue(other!, "a", "one");
    await expectValue(leader, "a", "one");
    await expectValue(follower!, "a", "one");
    equal((await other!.request("GET", "/kv/missing")).status, 404);

    // Compare-and-set: success, mismatch, absent key.
    equal((await other!.request("PUT", "/kv/a?prev=one", "two")).status, 200);
    await expectValue(follower!, "a", "two");
    equal((await follower!.request("PUT", "/kv/a?prev=one", "x")).status, 412);
    equal((await leader.request("PUT", "/kv/none?prev=", "x")).status, 412);
    await expectValue(leader, "a", "two");
    const spaced = await leader.request("PUT", "/kv/a?prev=t%77o", "a b");
    equal(spaced.status, 200);
    equal((await leader.request("PUT", "/kv/a?prev=a+b", "3")).status, 200);
    await expectValue(other!, "a", "3");

    // Delete, also of an absent key.
    equal((await follower!.request("DELETE", "/kv/a")).status, 200);
    equal((await follower!.request("DELETE", "/kv/a")).status, 200);
    equal((await other!.request("GET", "/kv/a")).status, 404);

    // Keys and values are UTF-8; keys may hold slashes.
    const key = "dir/ключ 🔑";
    const path = `/kv/${encodeURIComponent("dir")}/${
      encodeURIComponent("ключ 🔑")
    }`;
    equal((await other!.request("PUT", path, "значение ✓")).status, 200);
    await expectValue(leader, key, "значение ✓");
    equal((await leader.request("PUT", "/kv/empty", "")).status, 200);
    await expectValue(follower!, "empty", "");

    await expectBadInput(follower!);
    await expectMethodNotAllowed(other!);
    equal((await leader.request("GET", "/nothing")).status, 404);

    const status = await leader.request("GET", "/status");
    equal(status.status, 200);
    const parsed = JSON.parse(status.body) as Status;
    equal(parsed.id, leader.id);
    equal(parsed.role, "leader");

    // No quorum: writes and reads answer 503 with a JSON reason.
    await Promise.all([follower!.stop("SIGTERM"), other!.stop("SIGTERM")]);
    const [put, get] = await Promise.all([
      leader.request("PUT", "/kv/b", "x"),
      leader.request("GET", "/kv/empty"),
    ]);
    for (const reply of [put, get]) {
      equal(reply.status, 503);
      ok(JSON.parse(reply.body).error.length > 0);
    }
  });
});

function statusOf(reply: Promise<Reply>): Promise<number> {
  return reply.then((r) => r.status);
}

async function expectValue(
  node: KvNode,
  key: string,
  value: string,
): Promise<void> {
  const reply = await node.request("GET", `/kv/${encodeURIComponent(key)}`);
  deepEqual([reply.status, reply.body], [200, value], `GET ${key}`);
}

async function expectBadInput(node: KvNode): Promise<void> {
  const badUtf8 = new Uint8Array([0x61, 0xff, 0xfe]);
  const cases: [string, string, BodyInit | undefined][] = [
    ["GET", "/kv/", undefined],
    ["PUT", "/kv", "x"],
    ["GET", `/kv/${"k".repeat(1025)}`, undefined],
    ["PUT", `/kv/${"é".repeat(513)}`, "x"],
    ["PUT", "/kv/big", "v".repeat(1024 * 1024 + 1)],
    ["PUT", "/kv/bad", badUtf8],
    ["GET", "/kv/%FF", undefined],
    ["DELETE", "/kv/%E2%82", undefined],
    ["PUT", "/kv/a?prev=%C3", "x"],
  ];
  for (const [method, path, body] of cases) {
    const reply = await node.request(method, path, body);
    equal(reply.status, 400, `${method} ${path.slice(0, 40)}: ${reply.body}`);
    ok(JSON.parse(reply.body).error.startsWith("Bad request"));
  }
  // The limits themselves are accepted.
  const longKey = "k".repeat(1024);
  equal((await node.request("PUT", `/kv/${longKey}`, "x")).status, 200);
  const bigValue = "v".repeat(1024 * 1024);
  equal((await node.request("PUT", "/kv/big", bigValue)).status, 200);
  await expectValue(node, "big", bigValue);
}

async function expectMethodNotAllowed(node: KvNode): Promise<void> {
  for (
    const [method, path] of [
      ["POST", "/kv/a"],
      ["PATCH", "/kv/a"],
      ["POST", "/status"],
      ["DELETE", "/status"],
    ]
  ) {
    const reply = await node.request(method!, path!, "x");
    equal(reply.status, 405, `${method} ${path}`);
    ok(reply.headers.get("allow")!.includes("GET"));
  }
}

// ------------------------------------------------------------- faults

Deno.test("kv GET: a deposed leader never answers with the old value", async () => {
  await withCluster(async (cluster) => {
    const old = await cluster.leader();
    equal((await old.request("PUT", "/kv/k", "old")).status, 200);
    const oldTerm = (await old.status())!.term;

    // Freeze the leader: the others elect a new one and write through it.
    Deno.kill(old.pid, "SIGSTOP");
    const rest = cluster.nodes.filter((node) => node !== old);
    const next = await cluster.leader(rest);
    ok((await next.status())!.term > oldTerm);
    equal((await next.request("PUT", "/kv/k", "new")).status, 200);

    // A read sent while it is frozen, served first thing on resume.
    const queued = old.request("GET", "/kv/k");
    Deno.kill(old.pid, "SIGCONT");
    const replies = [await queued];
    // Reads right after resuming, until it answers with data.
    await waitFor(async () => {
      const reply = await old.request("GET", "/kv/k");
      replies.push(reply);
      return reply.status === 200;
    }, "the old leader to serve the read");
    for (const reply of replies) {
      ok(
        reply.status === 503 || (reply.status === 200 && reply.body === "new"),
        `stale read: ${reply.status} ${reply.body}`,
      );
    }
  });
});

Deno.test("kv: kill -9 under load loses no acknowledged PUT", async () => {
  await withCluster(async (cluster) => {
    const victim = await cluster.leader();
    const acknowledged = new Map<string, string>();
    let running = true;

    const writer = async (number: number) => {
      for (let sequence = 0; running; sequence++) {
        const node = cluster.nodes[sequence % cluster.nodes.length]!;
        const key = `w${number}-${sequence}`;
        const value = `value ${number} ${sequence}`;
        try {
          const reply = await node.request("PUT", `/kv/${key}`, value);
          if (reply.status === 200) acknowledged.set(key, value);
        } catch {
          // Refused or reset: the write's outcome is unknown, not acked.
        }
      }
    };
    const writers = Array.from({ length: 6 }, (_, i) => writer(i));

    await waitFor(() => acknowledged.size >= 200, "writes before the kill");
    await victim.stop("SIGKILL");
    const countAtKill = acknowledged.size;
    await waitFor(
      () => acknowledged.size >= countAtKill + 200,
      "writes after the kill",
    );
    running = false;
    await Promise.all(writers);

    victim.start(true);
    const survivor = cluster.nodes.find((node) => node !== victim)!;
    const commit = await waitFor(
      async () => (await survivor.status())?.commitIndex,
      "the survivors' commit index",
    );
    await waitFor(
      async () => ((await victim.status())?.appliedIndex ?? 0) >= commit,
      "the restarted node to converge",
    );

    const entries = [...acknowledged];
    const missing: string[] = [];
    const reader = async (start: number) => {
      for (let at = start; at < entries.length; at += 8) {
        const [key, value] = entries[at]!;
        for (const node of [victim, survivor]) {
          const reply = await node.request("GET", `/kv/${key}`);
          if (reply.status !== 200 || reply.body !== value) {
            missing.push(`${key} on ${node.id}: ${reply.status}`);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => reader(i)));
    deepEqual(missing.slice(0, 10), []);
    ok(entries.length >= 400);
  });
});

// ----------------------------------------------------------- membership

Deno.test("kv.ts POST /config adds a --join node and removes the leader", async () => {
  await withCluster(async (cluster) => {
    const leader = await cluster.leader();
    const [port] = freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    const everyone = `${cluster.nodes[0]!.cluster},4=${url}`;
    const joiner = new KvNode(4, url, `${cluster.root}/node-4`, everyone);
    joiner.start(false, true);
    cluster.nodes.push(joiner);
    await waitFor(() => joiner.status(), "node 4 to answer");

    const bad = await leader.request("POST", "/config", "4=nope");
    equal(bad.status, 400);
    const follower = cluster.nodes.find((node) => node !== leader)!;
    const grown = await follower.request("POST", "/config", everyone);
    equal(grown.status, 200, grown.body);
    deepEqual(
      JSON.parse(grown.body).members.map((m: { id: number }) => m.id),
      [1, 2, 3, 4],
    );
    equal((await joiner.request("PUT", "/kv/grown", "yes")).status, 200);

    const rest = cluster.nodes.filter((node) => node !== leader);
    const without = rest.map((node) => `${node.id}=${node.url}`).join(",");
    const shrunk = await leader.request("POST", "/config", without);
    equal(shrunk.status, 200, shrunk.body);
    await leader.stop("SIGTERM");
    const next = await cluster.leader(rest);
    ok(next !== leader);
    equal((await next.request("PUT", "/kv/shrunk", "yes")).status, 200);
    for (const node of rest) {
      const reply = await node.request("GET", "/kv/grown");
      deepEqual([reply.status, reply.body], [200, "yes"]);
    }
  });
});
