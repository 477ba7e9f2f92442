/**
 * Integration tests over real HTTP on loopback (issue: core, WAL,
 * transport and API).
 */

import assert from "node:assert/strict";
import {
  Config,
  DataPathLockedError,
  HttpNode,
  NoLeaderError,
  Server,
  StoppedError,
} from "../mod.ts";
import {
  AppendCommand,
  FailCommand,
  freePorts,
  TestCluster,
  waitUntil,
} from "./_helpers.ts";

Deno.test("Server elects exactly one leader among three nodes", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const leader = await cluster.leader();
    const term = leader.status().term;
    for (const server of cluster.servers.values()) {
      await waitUntil(
        () => server.status().leader === leader.id,
        `node ${server.id} to follow ${leader.id}`,
      );
      assert.equal(server.status().term, term);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.exec() on leader and follower applies everywhere in order", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const leader = await cluster.leader();
    const follower = await cluster.follower();
    assert.equal(await leader.exec(new AppendCommand(1)), 1);
    assert.equal(await follower.exec(new AppendCommand(2)), 2);
    assert.equal(await leader.exec(new AppendCommand(3)), 3);
    await cluster.applied(leader.status().commitIndex);
    for (const server of cluster.servers.values()) {
      assert.deepEqual(server.context, [1, 2, 3]);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.exec() rejects with the error apply threw, and goes on", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const follower = await cluster.follower();
    await assert.rejects(
      () => follower.exec(new FailCommand("no")),
      (error: Error) =>
        error.name === "RangeError" && error.message === "refused: no",
    );
    assert.equal(await follower.exec(new AppendCommand(5)), 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.exec() of an unregistered command throws TypeError", async () => {
  const cluster = await TestCluster.start(1);
  try {
    const leader = await cluster.leader();
    const stranger = {
      name: () => "stranger",
      apply: () => 0,
    };
    await assert.rejects(
      () => leader.exec(stranger),
      new TypeError('Cannot exec command "stranger": it is not registered'),
    );
    assert.throws(
      () => leader.registerCommand(AppendCommand),
      new TypeError(
        'Cannot register command "append": the name is already registered',
      ),
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.exec() refuses a command over entryBytesMax and appends nothing", async () => {
  const cluster = await TestCluster.start(3, { entryBytesMax: 100 });
  try {
    const follower = await cluster.follower();
    const before = (await cluster.leader()).status().lastLogIndex;
    await assert.rejects(
      () => follower.exec(new FailCommand("x".repeat(200))),
      /Cannot exec command "fail": its encoding is \d+ characters, over entryBytesMax \(100\)/,
    );
    assert.equal((await cluster.leader()).status().lastLogIndex, before);
    assert.equal(await follower.exec(new AppendCommand(1)), 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server stops applying at an entry whose command it does not know", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const leader = await cluster.leader();
    const follower = await cluster.follower();
    await cluster.stopNode(follower.id);
    const partial = new Server<number[]>(
      follower.id,
      [],
      cluster.config,
      cluster.dataPath(follower.id),
    );
    partial.registerCommand(FailCommand); // no "append"
    partial.setHttpTransport(cluster.ports[follower.id - 1]!);
    await partial.start();
    try {
      await leader.exec(new AppendCommand(9));
      await waitUntil(
        () => partial.status().role === "failed",
        "the node without the command to fail",
      );
      assert.match(
        partial.status().failure ?? "",
        /Cannot apply entry \d+ \(term \d+\): Cannot decode command "append"/,
      );
      assert.deepEqual(partial.context, []);
      await assert.rejects(
        () => partial.exec(new FailCommand("x")),
        StoppedError,
      );
    } finally {
      await partial.stop();
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("Server keeps accepting writes after the leader stops", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const first = await cluster.leader();
    await first.exec(new AppendCommand(1));
    await cluster.stopNode(first.id);
    const second = await cluster.leader();
    assert.notEqual(second.id, first.id);
    assert.equal(await second.exec(new AppendCommand(2)), 2);
    const follower = await cluster.follower();
    assert.equal(await follower.exec(new AppendCommand(3)), 3);
    assert.ok(second.status().term > 0);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.start({ recover: true }) rebuilds the context exactly", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const follower = await cluster.follower();
    for (let i = 1; i <= 20; i++) await follower.exec(new AppendCommand(i));
    await cluster.applied((await cluster.leader()).status().commitIndex);
    const before = [...follower.context];
    await cluster.stopNode(follower.id);
    const restarted = await cluster.startNode(follower.id, true);
    assert.deepEqual(restarted.context, before);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.start({ recover: false }) re-applies nothing", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const follower = await cluster.follower();
    for (let i = 1; i <= 5; i++) await follower.exec(new AppendCommand(i));
    await cluster.applied((await cluster.leader()).status().commitIndex);
    const applied = follower.status().appliedIndex;
    await cluster.stopNode(follower.id);
    const restarted = await cluster.startNode(follower.id, false);
    assert.deepEqual(restarted.context, []);
    assert.equal(restarted.status().appliedIndex, applied);
    await restarted.exec(new AppendCommand(6));
    await waitUntil(
      () => restarted.context.length === 1,
      "the new entry to apply",
    );
    assert.deepEqual(restarted.context, [6]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.start() refuses a data path held by another server", async () => {
  const cluster = await TestCluster.start(1);
  try {
    const twin = cluster.create(1);
    await assert.rejects(() => twin.start(), DataPathLockedError);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.handler answers a malformed RPC with 400 and keeps its state", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const leader = await cluster.leader();
    const before = leader.status();
    const url = `http://127.0.0.1:${cluster.ports[leader.id - 1]}/raft/message`;
    const bad = await fetch(url, { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /JSON/i);
    const shape = await fetch(url, {
      method: "POST",
      body: JSON.stringify({
        messages: [{ type: "append", from: 2, to: leader.id, term: -1 }],
      }),
    });
    assert.equal(shape.status, 400);
    assert.match((await shape.json()).error, /term/);
    const stranger = await fetch(url, {
      method: "POST",
      body: JSON.stringify({
        messages: [{
          type: "heartbeat",
          from: 99,
          to: leader.id,
          term: before.term + 5,
          commit: 0,
          round: 1,
        }],
      }),
    });
    assert.equal(stranger.status, 403);
    await stranger.body?.cancel();
    const after = leader.status();
    assert.equal(after.term, before.term);
    assert.equal(after.role, "leader");
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.exec() without a reachable majority fails with NoLeaderError", async () => {
  const cluster = await TestCluster.start(3, { execTimeoutMs: 1500 });
  try {
    const survivor = await cluster.follower();
    for (const id of [...cluster.servers.keys()]) {
      if (id !== survivor.id) await cluster.stopNode(id);
    }
    // It may have been handed leadership; alone it steps down (check
    // quorum) and then knows no leader.
    await waitUntil(
      () => survivor.status().leader === null,
      "the survivor to know no leader",
    );
    await assert.rejects(
      () => survivor.exec(new AppendCommand(1)),
      NoLeaderError,
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Config and Server reject bad configuration", () => {
  assert.throws(
    () =>
      new Config(
        new HttpNode(1, "http://127.0.0.1:1"),
        new HttpNode(1, "http://127.0.0.1:2"),
      ),
    new TypeError("Invalid configuration: node id 1 appears twice"),
  );
  assert.throws(() => new Config(), TypeError);
  const config = new Config(new HttpNode(1, "http://127.0.0.1:1"));
  assert.throws(
    () => new Server(2, [], config, "unused"),
    /Invalid server id 2: not in the configuration/,
  );
  assert.throws(
    () =>
      new Server(1, [], config, "unused", {
        heartbeatIntervalMs: 500,
        electionTimeoutMs: 150,
      }),
    RangeError,
  );
});

Deno.test("Server loses no acknowledged write when a node is killed mid-load", async () => {
  const root = await Deno.makeTempDir({ prefix: "lilraft-kill-" });
  const ports = freePorts(3);
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const config = new Config(...urls.map((url, i) => new HttpNode(i + 1, url)));
  const spawn = (recover: boolean) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./fixtures/append_node.ts", import.meta.url).pathname,
        "1",
        `${root}/node-1`,
        String(recover),
        ...urls,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  // Node 1 runs in its own process with the shortest election timeout, so
  // it is likely the leader when it is killed.
  let child = spawn(false);
  const local = [2, 3].map((id) => {
    const server = new Server<number[]>(id, [], config, `${root}/node-${id}`, {
      electionTimeoutMs: 2000,
    });
    server.registerCommand(AppendCommand);
    server.registerCommand(FailCommand);
    server.setHttpTransport(ports[id - 1]!);
    return server;
  });
  try {
    await Promise.all(local.map((server) => server.start()));
    await waitUntil(
      () => local.every((server) => server.status().leader === 1),
      "node 1 to lead",
    );
    const acknowledged: number[] = [];
    let next = 0;
    let stop = false;
    const writer = async (server: Server<number[]>) => {
      while (!stop) {
        const value = next++;
        try {
          await server.exec(new AppendCommand(value));
          acknowledged.push(value);
        } catch {
          // Unknown outcome or no leader: not acknowledged, keep going.
        }
      }
    };
    const writers = [...local, ...local].map(writer);
    await waitUntil(() => acknowledged.length >= 200, "200 writes");
    child.kill("SIGKILL");
    await child.status;
    await waitUntil(() => acknowledged.length >= 400, "writes after the kill");
    child = spawn(true);
    await waitUntil(() => acknowledged.length >= 600, "writes after restart");
    stop = true;
    await Promise.all(writers);
    const leader = await waitUntil(
      () => local.find((s) => s.status().role === "leader"),
      "a leader",
    );
    const commit = leader.status().commitIndex;
    const remote = await waitUntil(async () => {
      try {
        const response = await fetch(`${urls[0]}/context`);
        const body = await response.json();
        return body.status.appliedIndex >= commit ? body : undefined;
      } catch {
        return undefined;
      }
    }, "the restarted node to catch up");
    await waitUntil(
      () => local.every((s) => s.status().appliedIndex >= commit),
      "local nodes to apply",
    );
    const contexts = [
      remote.context as number[],
      ...local.map((s) => s.context),
    ];
    for (const context of contexts) {
      const present = new Set(context);
      const lost = acknowledged.filter((value) => !present.has(value));
      assert.deepEqual(lost, []);
      assert.deepEqual(context.slice(0, commit), contexts[0]!.slice(0, commit));
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
    await Promise.all(local.map((server) => server.stop()));
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Server.stop() on the leader hands leadership over first", async () => {
  const cluster = await TestCluster.start(3);
  try {
    const old = await cluster.leader();
    await old.exec(new AppendCommand(1));
    const term = old.status().term;
    await cluster.stopNode(old.id);
    // No waiting: the successor took over before stop() resolved.
    const leaders = [...cluster.servers.values()].filter((server) =>
      server.status().role === "leader"
    );
    assert.equal(leaders.length, 1);
    assert.equal(leaders[0]!.status().term, term + 1);
    assert.equal(await leaders[0]!.exec(new AppendCommand(2)), 2);
  } finally {
    await cluster.close();
  }
});

Deno.test("Server.start() that fails releases the data path and the port", async () => {
  const cluster = await TestCluster.prepare(1);
  const port = cluster.ports[0]!;
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    await assert.rejects(() => cluster.startNode(1), Deno.errors.AddrInUse);
  } finally {
    squatter.close();
  }
  try {
    const server = await cluster.startNode(1);
    assert.equal(await server.exec(new AppendCommand(1)), 1);
  } finally {
    await cluster.close();
  }
});
