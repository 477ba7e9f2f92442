/**
 * Membership changes by joint consensus over real HTTP (Raft section 6).
 */

import assert from "node:assert/strict";
import {
  ConfigChangeError,
  FileStorage,
  type SaveBatch,
  type Server,
  StoppedError,
  type Storage,
} from "../mod.ts";
import { AppendCommand, TestCluster, waitUntil } from "./_helpers.ts";

/** Keeps writing through whichever node answers; records what was acked. */
class Writer {
  acknowledged: number[] = [];
  #next = 0;
  #stopped = false;
  #done: Promise<void>;

  constructor(pick: () => Server<number[]> | undefined) {
    this.#done = this.#run(pick);
  }

  async #run(pick: () => Server<number[]> | undefined): Promise<void> {
    while (!this.#stopped) {
      const server = pick();
      const value = this.#next++;
      try {
        if (!server) throw new Error("no node");
        await server.exec(new AppendCommand(value));
        this.acknowledged.push(value);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }
}

function ids(server: Server<number[]>): number[] {
  return server.status().members.map((member) => member.id);
}

async function settle(
  cluster: TestCluster,
  writer: Writer,
  members: number[],
): Promise<void> {
  await writer.stop();
  const leader = await cluster.leader();
  await leader.exec(new AppendCommand(-1));
  const commit = leader.status().commitIndex;
  await cluster.applied(commit);
  for (const server of cluster.servers.values()) {
    if (!members.includes(server.id)) continue;
    assert.deepEqual(ids(server), members, `members seen by ${server.id}`);
    const present = new Set(server.context);
    const lost = writer.acknowledged.filter((value) => !present.has(value));
    assert.deepEqual(lost, [], `writes lost on node ${server.id}`);
  }
}

function anyRunning(cluster: TestCluster, among: number[]) {
  return () => {
    const running = among.filter((id) => cluster.servers.has(id));
    const id = running[Math.floor(Math.random() * running.length)];
    return id === undefined ? undefined : cluster.servers.get(id);
  };
}

Deno.test("Server.setConfig() grows 3 to 5 under writes", async () => {
  const cluster = await TestCluster.start(3, {}, 2);
  const writer = new Writer(anyRunning(cluster, [1, 2, 3]));
  try {
    await cluster.startNode(4);
    await cluster.startNode(5);
    assert.deepEqual(ids(cluster.servers.get(4)!), []);
    const leader = await cluster.leader();
    await leader.setConfig(...cluster.nodes);
    assert.deepEqual(ids(leader), [1, 2, 3, 4, 5]);
    assert.deepEqual(leader.status().oldMembers, []);
    await settle(cluster, writer, [1, 2, 3, 4, 5]);
  } finally {
    await writer.stop();
    await cluster.close();
  }
});

Deno.test("Server.setConfig() shrinks 5 to 3 without the leader", async () => {
  const cluster = await TestCluster.start(5);
  const writer = new Writer(() => cluster.servers.get(1 + (Date.now() % 5)));
  try {
    const old = await cluster.leader();
    const keep = cluster.nodes.filter((node) => node.id !== old.id).slice(0, 3);
    await old.setConfig(...keep);
    const keptIds = keep.map((node) => node.id);
    await waitUntil(
      () => old.status().role === "follower",
      "the removed leader to step down",
    );
    const next = await waitUntil(
      () =>
        [...cluster.servers.values()].find((server) =>
          server.status().role === "leader" && server !== old
        ),
      "a new leader",
    );
    assert.ok(keptIds.includes(next.id));
    assert.equal(await next.exec(new AppendCommand(1000)) > 0, true);
    for (const id of cluster.servers.keys()) {
      if (!keptIds.includes(id)) await cluster.stopNode(id);
    }
    await settle(cluster, writer, keptIds);
  } finally {
    await writer.stop();
    await cluster.close();
  }
});

Deno.test("Server.setConfig() replaces a follower, forwarded from a follower", async () => {
  const cluster = await TestCluster.start(3, {}, 1);
  const writer = new Writer(anyRunning(cluster, [1, 2, 3, 4]));
  try {
    const leader = await cluster.leader();
    const [gone, asker] = [1, 2, 3].filter((id) => id !== leader.id);
    await cluster.startNode(4);
    const target = cluster.nodes.filter((node) => node.id !== gone);
    await cluster.servers.get(asker!)!.setConfig(...target);
    await cluster.stopNode(gone!);
    await settle(cluster, writer, target.map((node) => node.id));
  } finally {
    await writer.stop();
    await cluster.close();
  }
});

Deno.test("Server.setConfig() rejects a second change and a node that cannot catch up", async () => {
  const cluster = await TestCluster.start(3, { catchUpTimeoutMs: 800 }, 1);
  try {
    const leader = await cluster.leader();
    const before = leader.status().lastLogIndex;
    // Node 4 is never started, so it cannot catch up.
    const first = leader.setConfig(...cluster.nodes);
    await assert.rejects(
      () => leader.setConfig(...cluster.nodes.slice(0, 3)),
      ConfigChangeError,
    );
    await assert.rejects(
      first,
      (error: Error) =>
        error instanceof ConfigChangeError &&
        /node\(s\) 4 did not catch up within 800 ms/.test(error.message),
    );
    assert.deepEqual(ids(leader), [1, 2, 3]);
    assert.equal(leader.status().lastLogIndex, before);
    assert.equal(await leader.exec(new AppendCommand(1)), 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.setConfig() refuses bad member lists and appends nothing", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const leader = await cluster.leader();
    const before = leader.status().lastLogIndex;
    const [a, b] = cluster.nodes;
    const cases: [unknown[], RegExp][] = [
      [[], /expected a non-empty list/],
      [[a, { id: a!.id, url: "http://127.0.0.1:1" }], /id 1 appears twice/],
      [[a, { id: 9, url: a!.url }], /appears twice/],
      [[{ id: 0, url: b!.url }], /id must be a positive integer/],
      [[{ id: -3, url: b!.url }], /id must be a positive integer/],
    ];
    for (const [members, message] of cases) {
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        () => leader.setConfig(...(members as any)),
        (error: Error) =>
          error instanceof TypeError && message.test(error.message),
      );
    }
    assert.equal(leader.status().lastLogIndex, before);
  } finally {
    await cluster.close();
  }
});

/** File storage whose saves can be held and then failed, as a dead disk. */
class HoldingStorage implements Storage {
  #inner: FileStorage;
  #hold: (batch: SaveBatch) => boolean = () => false;
  #holding = false;
  #held: (() => void)[] = [];

  constructor(path: string) {
    this.#inner = new FileStorage(path);
  }
  holdWhen(predicate: (batch: SaveBatch) => boolean): void {
    this.#hold = predicate;
  }
  get holding(): boolean {
    return this.#holding;
  }
  fail(): void {
    for (const reject of this.#held) reject();
    this.#held = [];
  }
  open() {
    return this.#inner.open();
  }
  save(batch: SaveBatch): Promise<void> {
    if (this.#holding || this.#hold(batch)) {
      this.#holding = true;
      return new Promise((_, reject) =>
        this.#held.push(() => reject(new Error("simulated disk failure")))
      );
    }
    return this.#inner.save(batch);
  }
  stats() {
    return this.#inner.stats();
  }
  close() {
    return this.#inner.close();
  }
}

Deno.test("Server.setConfig() completes after its leader dies mid-change", async () => {
  const cluster = await TestCluster.prepare(3, {}, 2);
  try {
    // Node 1 has the shortest election timeout, so it leads first.
    const storage = new HoldingStorage(cluster.dataPath(1));
    const leader = await cluster.startNode(1, false, { storage });
    for (const id of [2, 3]) {
      await cluster.startNode(id, false, { electionTimeoutMs: 2000 });
    }
    await cluster.startNode(4);
    await cluster.startNode(5);
    assert.equal((await cluster.leader()).id, 1);
    // Its disk stops once the joint configuration arrives: the joint entry
    // commits on the followers, but the leader never appends C_new.
    storage.holdWhen((batch) =>
      batch.entries?.some((entry) => entry.data.includes('"old"')) ?? false
    );
    const change = leader.setConfig(...cluster.nodes);
    await waitUntil(() => storage.holding, "the joint entry to be held");
    storage.fail();
    await assert.rejects(change, StoppedError);
    await cluster.stopNode(leader.id);
    const next = await cluster.leader();
    await waitUntil(
      () => ids(next).length === 5 && next.status().oldMembers.length === 0,
      "the new leader to finish the change",
    );
    const restarted = await cluster.startNode(1, true);
    await waitUntil(() => ids(restarted).length === 5, "restart to see C_new");
    const writer = new Writer(anyRunning(cluster, [1, 2, 3, 4, 5]));
    await waitUntil(() => writer.acknowledged.length >= 20, "writes");
    await settle(cluster, writer, [1, 2, 3, 4, 5]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.start() restores membership from the log", async () => {
  const cluster = await TestCluster.start(3, {}, 1);
  try {
    await cluster.startNode(4);
    const leader = await cluster.leader();
    await leader.setConfig(...cluster.nodes);
    await cluster.applied(leader.status().commitIndex);
    await cluster.stopNode(4);
    const plain = await cluster.startNode(4, false);
    assert.deepEqual(ids(plain), [1, 2, 3, 4]);
    await cluster.stopNode(4);
    const recovered = await cluster.startNode(4, true);
    assert.deepEqual(ids(recovered), [1, 2, 3, 4]);
  } finally {
    await cluster.close();
  }
});
