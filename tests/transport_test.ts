import assert from "node:assert/strict";
import {
  EntryKind,
  type Member,
  type Message,
  type NodeId,
} from "../lib/core/types.ts";
import type { LogFields, Logger } from "../lib/logger.ts";
import { HttpTransport } from "../lib/transport/http.ts";
import { MemoryNetwork } from "../lib/transport/memory.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "../lib/transport/transport.ts";
import {
  parseForwardReply,
  parseForwardRequest,
  parseMessageBody,
  parseMessages,
} from "../lib/transport/validate.ts";

// ---------------------------------------------------------------------------
// Helpers

/** A node under test: its transport and everything its handlers saw. */
interface TestNode {
  id: NodeId;
  transport: Transport;
  handlers: TransportHandlers;
  received: Message[];
  unreachable: NodeId[];
  forwarded: ForwardRequest[];
  accepted: boolean;
}

/** Started nodes that know each other and a dead member `deadId`. */
interface Cluster {
  nodes: TestNode[];
  deadId: NodeId;
  close(): Promise<void>;
}

const deadId = 99;

function testNode(id: NodeId, transport: Transport): TestNode {
  const node: TestNode = {
    id,
    transport,
    received: [],
    unreachable: [],
    forwarded: [],
    accepted: true,
    handlers: {
      accepts: () => node.accepted,
      receive: (messages) => node.received.push(...messages),
      forward: (request) => {
        node.forwarded.push(request);
        return Promise.resolve(answer(id, request));
      },
      unreachable: (to) => node.unreachable.push(to),
    },
  };
  return node;
}

function answer(id: NodeId, request: ForwardRequest): ForwardReply {
  if (request.kind === "exec") {
    return { ok: true, value: { by: id, echo: request.payload } };
  }
  const message = `node ${id} is not the leader`;
  return { ok: false, error: { name: "NoLeaderError", message } };
}

async function waitFor(condition: () => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function heartbeat(from: NodeId, to: NodeId, round: number): Message {
  return { type: "heartbeat", from, to, term: 3, commit: 7, round };
}

function append(from: NodeId, to: NodeId, prevIndex: number): Message {
  const entries = [1, 2, 3].map((offset) => ({
    index: prevIndex + offset,
    term: 3,
    kind: EntryKind.Command,
    data: `command ${prevIndex + offset} ✓ "quoted"\n`,
  }));
  return {
    type: "append",
    from,
    to,
    term: 3,
    prevIndex,
    prevTerm: 2,
    entries,
    commit: prevIndex,
  };
}

/** One message of every type, `count` in all, from 1 to 2. */
function mixedBatch(count: number): Message[] {
  const messages: Message[] = [];
  for (let round = 0; messages.length < count; round++) {
    messages.push(
      heartbeat(1, 2, round),
      append(1, 2, round * 3),
      {
        type: "vote",
        from: 1,
        to: 2,
        term: 4,
        pre: round % 2 === 0,
        lastIndex: round,
        lastTerm: 2,
        transfer: round % 3 === 0,
      },
      {
        type: "appendResponse",
        from: 1,
        to: 2,
        term: 3,
        success: false,
        matchIndex: 0,
        rejectedIndex: round,
        conflictTerm: 1,
        conflictIndex: 1,
      },
    );
  }
  return messages.slice(0, count);
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

function recordingLogger() {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const record = (level: string) => (message: string, fields?: LogFields) =>
    lines.push({ level, message, ...(fields && { fields }) });
  const logger: Logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  return { logger, lines };
}

// ---------------------------------------------------------------------------
// Cluster setups, one per implementation

async function httpCluster(count: number): Promise<Cluster> {
  const nodes: TestNode[] = [];
  for (let id = 1; id <= count; id++) {
    const transport = new HttpTransport({ requestTimeoutMs: 5000 });
    const node = testNode(id, transport);
    await transport.start(id, node.handlers);
    await transport.listen(0);
    nodes.push(node);
  }

  const members: Member[] = nodes.map((node) => ({
    id: node.id,
    url: `http://127.0.0.1:${(node.transport as HttpTransport).port}/`,
  }));
  members.push({ id: deadId, url: `http://127.0.0.1:${closedPort()}` });
  for (const node of nodes) node.transport.setPeers(members);

  const close = async () => {
    for (const node of nodes) await node.transport.stop();
  };
  return { nodes, deadId, close };
}

function memoryCluster(count: number, network = new MemoryNetwork()) {
  const nodes: TestNode[] = [];
  const members: Member[] = [{ id: deadId, url: "memory://dead" }];
  for (let id = 1; id <= count; id++) {
    nodes.push(testNode(id, network.transport(id)));
    members.push({ id, url: `memory://${id}` });
  }

  const start = async () => {
    for (const node of nodes) {
      await node.transport.start(node.id, node.handlers);
      node.transport.setPeers(members);
    }
  };
  const close = async () => {
    for (const node of nodes) await node.transport.stop();
  };
  return start().then((): Cluster => ({ nodes, deadId, close }));
}

function nodesOf(cluster: Cluster): [TestNode, TestNode] {
  const [one, two] = cluster.nodes;
  assert.ok(one && two);
  return [one, two];
}

// ---------------------------------------------------------------------------
// The shared suite: every Transport implementation passes it

const setups: [string, (count: number) => Promise<Cluster>][] = [
  ["HttpTransport", httpCluster],
  ["MemoryTransport", (count) => memoryCluster(count)],
];

for (const [name, setup] of setups) {
  Deno.test(`${name}.send() delivers a batch intact and in order`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);
    const sent = mixedBatch(200);

    one.transport.send(sent.slice(0, 50));
    one.transport.send(sent.slice(50));
    await waitFor(() => two.received.length >= sent.length, "all delivered");

    assert.deepEqual(two.received, sent);
    assert.deepEqual(one.unreachable, []);
    await cluster.close();
  });

  Deno.test(`${name}.send() delivers both ways`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);

    one.transport.send([heartbeat(1, 2, 1)]);
    two.transport.send([heartbeat(2, 1, 2)]);
    await waitFor(() => one.received.length + two.received.length === 2, "2");

    assert.deepEqual(one.received, [heartbeat(2, 1, 2)]);
    assert.deepEqual(two.received, [heartbeat(1, 2, 1)]);
    await cluster.close();
  });

  Deno.test(`${name}.forward() returns the reply`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);
    const request: ForwardRequest = {
      kind: "exec",
      name: "put",
      payload: { key: "a", value: [1, "two"] },
    };

    const reply = await one.transport.forward(2, request, 5000);

    assert.deepEqual(reply, {
      ok: true,
      value: { by: 2, echo: { key: "a", value: [1, "two"] } },
    });
    assert.deepEqual(two.forwarded, [request]);
    await cluster.close();
  });

  Deno.test(`${name}.forward() returns an error reply`, async () => {
    const cluster = await setup(2);
    const [one] = nodesOf(cluster);

    const reply = await one.transport.forward(2, { kind: "readIndex" }, 5000);

    assert.deepEqual(reply, {
      ok: false,
      error: { name: "NoLeaderError", message: "node 2 is not the leader" },
    });
    await cluster.close();
  });

  Deno.test(`${name}.send() reports a dead peer unreachable`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);

    one.transport.send([heartbeat(1, cluster.deadId, 1), heartbeat(1, 2, 2)]);
    await waitFor(() => one.unreachable.length > 0, "unreachable reported");
    await waitFor(() => two.received.length > 0, "live peer served");

    assert.deepEqual(one.unreachable, [cluster.deadId]);
    assert.deepEqual(two.received, [heartbeat(1, 2, 2)]);
    await cluster.close();
  });

  Deno.test(`${name}.forward() rejects for a dead peer`, async () => {
    const cluster = await setup(2);
    const [one] = nodesOf(cluster);
    const request: ForwardRequest = { kind: "readIndex" };

    await assert.rejects(
      one.transport.forward(cluster.deadId, request, 5000),
      new RegExp(`^Error: Cannot forward to node ${cluster.deadId}`),
    );
    await cluster.close();
  });

  Deno.test(`${name}.send() drops messages to unknown peers`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);

    one.transport.send([heartbeat(1, 42, 1), heartbeat(1, 2, 2)]);
    await waitFor(() => two.received.length > 0, "known peer served");

    assert.deepEqual(two.received, [heartbeat(1, 2, 2)]);
    assert.deepEqual(one.unreachable, []);
    await cluster.close();
  });

  Deno.test(`${name}.stop() is idempotent and stops sending`, async () => {
    const cluster = await setup(2);
    const [one, two] = nodesOf(cluster);

    await one.transport.stop();
    await one.transport.stop();
    one.transport.send([heartbeat(1, 2, 1)]);

    await assert.rejects(
      one.transport.forward(2, { kind: "readIndex" }, 1000),
      /not started/,
    );
    assert.deepEqual(two.received, []);
    await cluster.close();
  });
}

// ---------------------------------------------------------------------------
// HttpTransport only: the HTTP surface, called through `handler`

async function startedTransport(options = {}) {
  const transport = new HttpTransport(options);
  const node = testNode(2, transport);
  await transport.start(2, node.handlers);
  return { transport, node };
}

function post(
  transport: HttpTransport,
  path: string,
  body: BodyInit,
  headers: HeadersInit = {},
): Promise<Response> {
  const url = `http://127.0.0.1${path}`;
  return transport.handler(new Request(url, { method: "POST", body, headers }));
}

async function errorOf(response: Response): Promise<string> {
  assert.equal(response.headers.get("content-type"), "application/json");
  const { error } = await response.json();
  assert.equal(typeof error, "string");
  return error;
}

Deno.test("HttpTransport.handler() answers 204 to valid messages", async () => {
  const { transport, node } = await startedTransport();
  const messages = [heartbeat(1, 2, 1), append(1, 2, 5)];

  const response = await post(
    transport,
    "/raft/message",
    JSON.stringify({ messages }),
  );

  assert.equal(response.status, 204);
  assert.deepEqual(node.received, messages);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 400 to malformed JSON", async () => {
  const { transport, node } = await startedTransport();

  const response = await post(transport, "/raft/message", "{not json");

  assert.equal(response.status, 400);
  assert.match(await errorOf(response), /^Malformed JSON: /);
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() names a bad field in 400", async () => {
  const { transport, node } = await startedTransport();
  const bad = { ...heartbeat(1, 2, 2), term: -1 };
  const body = JSON.stringify({ messages: [heartbeat(1, 2, 1), bad] });

  const response = await post(transport, "/raft/message", body);

  assert.equal(response.status, 400);
  assert.equal(
    await errorOf(response),
    'Invalid message at [1]: "term" must be a non-negative integer',
  );
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() refuses another node's mail", async () => {
  const { transport, node } = await startedTransport();
  const body = JSON.stringify({ messages: [heartbeat(1, 3, 1)] });

  const response = await post(transport, "/raft/message", body);

  assert.equal(response.status, 400);
  assert.equal(
    await errorOf(response),
    'Invalid message at [0]: "to" is 3 but this node is 2',
  );
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 400 to a bad forward", async () => {
  const { transport, node } = await startedTransport();
  const body = JSON.stringify({ kind: "exec", name: 7 });

  const response = await post(transport, "/raft/forward", body);

  assert.equal(response.status, 400);
  assert.match(await errorOf(response), /"name" must be a string/);
  assert.deepEqual(node.forwarded, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 413 to a large length", async () => {
  const { transport, node } = await startedTransport({ bodyBytesMax: 100 });
  const body = JSON.stringify({ messages: mixedBatch(10) });

  const response = await post(transport, "/raft/message", body);

  assert.equal(response.status, 413);
  assert.match(await errorOf(response), /limit is 100 bytes/);
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 413 to a large stream", async () => {
  const { transport, node } = await startedTransport({ bodyBytesMax: 100 });
  const chunk = new TextEncoder().encode(" ".repeat(60));
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 5) controller.enqueue(chunk);
      else controller.close();
    },
  });

  const response = await post(transport, "/raft/message", body, {
    "content-length": "10",
  });

  assert.equal(response.status, 413);
  assert.ok(sent <= 3, `read ${sent} chunks past the limit`);
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 403 to a stranger", async () => {
  const { transport, node } = await startedTransport();
  node.accepted = false;
  const body = JSON.stringify({ messages: [heartbeat(1, 2, 1)] });

  const response = await post(transport, "/raft/message", body);

  assert.equal(response.status, 403);
  assert.match(await errorOf(response), /node 1/);
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 404 and 405", async () => {
  const { transport, node } = await startedTransport();
  const get = (path: string) =>
    transport.handler(new Request(`http://127.0.0.1${path}`));

  const outside = await get("/health");
  const unknown = await post(transport, "/raft/other", "{}");
  const wrongMethod = await get("/raft/message");

  assert.equal(outside.status, 404);
  assert.match(await errorOf(outside), /\/health/);
  assert.equal(unknown.status, 404);
  assert.match(await errorOf(unknown), /\/raft\/other/);
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "POST");
  await wrongMethod.body?.cancel();
  assert.deepEqual(node.received, []);
  await transport.stop();
});

Deno.test("HttpTransport.handler() answers 503 before start", async () => {
  const transport = new HttpTransport();
  const body = JSON.stringify({ messages: [heartbeat(1, 2, 1)] });

  const response = await post(transport, "/raft/message", body);

  assert.equal(response.status, 503);
  assert.match(await errorOf(response), /not started/);
});

Deno.test("HttpTransport logs a down peer once, then its return", async () => {
  const { logger, lines } = recordingLogger();
  const one = testNode(1, new HttpTransport({ logger }));
  const two = testNode(2, new HttpTransport());
  const port = closedPort();
  await one.transport.start(1, one.handlers);
  one.transport.setPeers([{ id: 2, url: `http://127.0.0.1:${port}` }]);

  for (let round = 1; round <= 3; round++) {
    one.transport.send([heartbeat(1, 2, round)]);
    await waitFor(() => one.unreachable.length === round, `failure ${round}`);
  }
  await two.transport.start(2, two.handlers);
  await (two.transport as HttpTransport).listen(port);
  one.transport.send([heartbeat(1, 2, 4)]);
  await waitFor(() => two.received.length === 1, "delivered after return");
  await waitFor(
    () => lines.some((line) => line.message === "peer reachable again"),
    "the request to complete",
  );

  const levels = lines.filter((line) => line.level !== "debug")
    .map((line) => `${line.level} ${line.message}`);
  assert.deepEqual(levels, [
    "warn peer unreachable",
    "info peer reachable again",
  ]);
  await one.transport.stop();
  await two.transport.stop();
});

Deno.test("HttpTransport.forward() rejects after its timeout", async () => {
  const { transport: server, node } = await startedTransport();
  const release = Promise.withResolvers<void>();
  node.handlers.forward = async () => {
    await release.promise;
    return { ok: true, value: null };
  };
  await server.listen(0);
  const client = new HttpTransport();
  await client.start(1, testNode(1, client).handlers);
  client.setPeers([{ id: 2, url: `http://127.0.0.1:${server.port}` }]);

  await assert.rejects(
    client.forward(2, { kind: "readIndex" }, 50),
    new RegExp(
      "^Error: Cannot forward to node 2 at http://127.0.0.1:\\d+" +
        "/raft/forward: no answer within 50 ms$",
    ),
  );
  release.resolve();
  await client.stop();
  await server.stop();
});

Deno.test("HttpTransport drops the oldest when a queue is full", async () => {
  const { transport: server, node } = await startedTransport();
  await server.listen(0);
  const client = new HttpTransport({ queueMessagesMax: 10 });
  await client.start(1, testNode(1, client).handlers);
  client.setPeers([{ id: 2, url: `http://127.0.0.1:${server.port}` }]);
  const sent = Array.from({ length: 30 }, (_, round) => heartbeat(1, 2, round));

  client.send(sent.slice(0, 1));
  client.send(sent.slice(1));
  await waitFor(() => node.received.length === 11, "first and last ten");

  assert.deepEqual(node.received, [sent[0], ...sent.slice(20)]);
  assert.equal(client.dropped, 19);
  await client.stop();
  await server.stop();
});

Deno.test("new HttpTransport() rejects a bad limit", () => {
  assert.throws(
    () => new HttpTransport({ bodyBytesMax: 0 }),
    {
      name: "RangeError",
      message:
        'Invalid option: "bodyBytesMax" must be a positive integer, got 0',
    },
  );
});

// ---------------------------------------------------------------------------
// MemoryNetwork only: faults

Deno.test("MemoryNetwork.partition() cuts both ways until heal()", async () => {
  const network = new MemoryNetwork();
  const cluster = await memoryCluster(2, network);
  const [one, two] = nodesOf(cluster);

  network.partition([1], [2]);
  one.transport.send([heartbeat(1, 2, 1)]);
  two.transport.send([heartbeat(2, 1, 2)]);
  await waitFor(() => one.unreachable.length === 1, "1 sees 2 cut");
  await waitFor(() => two.unreachable.length === 1, "2 sees 1 cut");
  network.heal();
  one.transport.send([heartbeat(1, 2, 3)]);
  await waitFor(() => two.received.length === 1, "delivered after heal");

  assert.deepEqual(two.received, [heartbeat(1, 2, 3)]);
  assert.deepEqual(one.received, []);
  await cluster.close();
});

Deno.test("MemoryNetwork.partition() oneWay cuts one direction", async () => {
  const network = new MemoryNetwork();
  const cluster = await memoryCluster(2, network);
  const [one, two] = nodesOf(cluster);

  network.partition([1], [2], { oneWay: true });
  one.transport.send([heartbeat(1, 2, 1)]);
  two.transport.send([heartbeat(2, 1, 2)]);
  await waitFor(() => one.received.length === 1, "2 reaches 1");
  await waitFor(() => one.unreachable.length === 1, "1 sees 2 cut");

  assert.deepEqual(two.received, []);
  assert.deepEqual(two.unreachable, []);
  await cluster.close();
});

Deno.test("MemoryNetwork.isolate() cuts a node off until heal()", async () => {
  const network = new MemoryNetwork();
  const cluster = await memoryCluster(3, network);
  const [one, two] = nodesOf(cluster);

  network.isolate(2);
  one.transport.send([heartbeat(1, 2, 1), heartbeat(1, 3, 1)]);
  await waitFor(() => cluster.nodes[2]!.received.length === 1, "3 served");
  await waitFor(() => one.unreachable.length === 1, "2 cut");
  network.heal();
  one.transport.send([heartbeat(1, 2, 2)]);
  await waitFor(() => two.received.length === 1, "2 served after heal");

  assert.deepEqual(one.unreachable, [2]);
  assert.deepEqual(two.received, [heartbeat(1, 2, 2)]);
  await cluster.close();
});

/** A virtual clock: scheduled runs wait until `runAll` advances time. */
function virtualClock() {
  let now = 0;
  const queue: { at: number; run: () => void }[] = [];
  const schedule = (run: () => void, delayMs: number) => {
    queue.push({ at: now + delayMs, run });
  };
  const runAll = async () => {
    while (queue.length > 0) {
      queue.sort((a, b) => a.at - b.at);
      const next = queue.shift()!;
      now = next.at;
      next.run();
      await Promise.resolve();
    }
  };
  return { schedule, runAll, now: () => now };
}

/** A deterministic random source: a linear congruential generator. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

Deno.test("MemoryNetwork forward times out on its clock when cut", async () => {
  const clock = virtualClock();
  const network = new MemoryNetwork({ schedule: clock.schedule });
  const cluster = await memoryCluster(2, network);
  const [one, two] = nodesOf(cluster);

  network.partition([1], [2]);
  const forwarded = one.transport.forward(2, { kind: "readIndex" }, 1000);
  await clock.runAll();

  await assert.rejects(
    forwarded,
    /^Error: Cannot forward to node 2: no answer within 1000 ms$/,
  );
  assert.equal(clock.now(), 1000);
  assert.deepEqual(two.forwarded, []);
  await cluster.close();
});

Deno.test("MemoryNetwork.drop() and duplicate() act per message", async () => {
  const clock = virtualClock();
  const network = new MemoryNetwork({ schedule: clock.schedule });
  const cluster = await memoryCluster(2, network);
  const [one, two] = nodesOf(cluster);

  network.drop(1);
  one.transport.send([heartbeat(1, 2, 1)]);
  await clock.runAll();
  network.drop(0);
  network.duplicate(1);
  one.transport.send([heartbeat(1, 2, 2)]);
  await clock.runAll();

  assert.deepEqual(two.received, [heartbeat(1, 2, 2), heartbeat(1, 2, 2)]);
  assert.deepEqual(one.unreachable, []);
  await cluster.close();
});

Deno.test("MemoryNetwork.delay() reorders deterministically", async () => {
  const runOnce = async () => {
    const clock = virtualClock();
    const network = new MemoryNetwork({
      schedule: clock.schedule,
      random: seededRandom(7),
    });
    const cluster = await memoryCluster(2, network);
    const [one, two] = nodesOf(cluster);
    network.delay(10, 100);
    one.transport.send(mixedBatch(20));
    await clock.runAll();
    await cluster.close();
    return two.received;
  };

  const first = await runOnce();
  const second = await runOnce();

  assert.equal(first.length, 20);
  assert.notDeepEqual(first, mixedBatch(20));
  assert.deepEqual(second, first);
});

Deno.test("MemoryNetwork rejects bad fault parameters", () => {
  const network = new MemoryNetwork();
  assert.throws(() => network.drop(1.5), RangeError);
  assert.throws(() => network.duplicate(-0.1), RangeError);
  assert.throws(() => network.delay(10, 5), RangeError);
});

// ---------------------------------------------------------------------------
// Validation of untrusted JSON

Deno.test("parseMessages() copies only known fields", () => {
  const extra = { ...heartbeat(1, 2, 1), secret: "x" };

  assert.deepEqual(parseMessages([extra]), [heartbeat(1, 2, 1)]);
});

Deno.test("parseMessages() names the bad field", () => {
  const cases: [unknown, string][] = [
    [{ type: "nope" }, '"type" must be one of'],
    [{ ...heartbeat(1, 2, 1), from: 0 }, '"from" must be a positive integer'],
    [{ ...heartbeat(1, 2, 1), round: 1.5 }, '"round" must be a non-negative'],
    [{ ...heartbeat(1, 2, 1), term: "3" }, '"term" must be a non-negative'],
    [{ ...append(1, 2, 0), entries: {} }, '"entries" must be an array'],
    [
      { ...append(1, 2, 0), entries: [{ index: 1, term: 1, kind: 9 }] },
      '"entries[0].kind" must be 0, 1 or 2',
    ],
    [
      {
        ...append(1, 2, 0),
        entries: [{ index: 1, term: 1, kind: 1, data: 5 }],
      },
      '"entries[0].data" must be a string',
    ],
    [
      {
        ...append(1, 2, 0),
        entries: [{ index: 2, term: 1, kind: 1, data: "" }],
      },
      '"entries[0].index" must be 1, got 2',
    ],
    [{ ...heartbeat(1, 2, 1), type: "vote" }, '"pre" must be a boolean'],
    [{ ...heartbeat(1, 2, 1), type: "toString" }, '"type" must be one of'],
  ];

  for (const [message, reason] of cases) {
    assert.throws(
      () => parseMessages([message]),
      (error: Error) =>
        error instanceof TypeError &&
        error.message.startsWith("Invalid message at [0]: ") &&
        error.message.includes(reason),
      reason,
    );
  }
});

Deno.test("parseMessages() bounds messages and entries", () => {
  const many = Array.from({ length: 10_001 }, () => heartbeat(1, 2, 1));
  const entries = Array.from({ length: 10_001 }, (_, position) => ({
    index: position + 1,
    term: 1,
    kind: EntryKind.Noop,
    data: "",
  }));

  assert.throws(() => parseMessages(many), /at most 10000/);
  assert.throws(
    () => parseMessages([{ ...append(1, 2, 0), entries }]),
    /body limit of 10000 entries/,
  );
});

Deno.test("parseMessageBody() requires one sender", () => {
  const body = { messages: [heartbeat(1, 2, 1), heartbeat(3, 2, 1)] };

  assert.deepEqual(parseMessageBody({ messages: [heartbeat(1, 2, 1)] }), {
    from: 1,
    messages: [heartbeat(1, 2, 1)],
  });
  assert.throws(
    () => parseMessageBody(body),
    /^TypeError: Invalid message at \[1\]: "from" is 3 but the body is from 1$/,
  );
  assert.throws(() => parseMessageBody({ messages: [] }), /must not be empty/);
  assert.throws(() => parseMessageBody([]), /expected an object/);
});

Deno.test("parseForwardRequest() and parseForwardReply() check shapes", () => {
  const config = {
    kind: "config",
    members: [{ id: 1, url: "http://127.0.0.1:1", extra: true }],
  };

  assert.deepEqual(parseForwardRequest(config), {
    kind: "config",
    members: [{ id: 1, url: "http://127.0.0.1:1" }],
  });
  assert.throws(
    () => parseForwardRequest({ kind: "config", members: [{ id: -1 }] }),
    /"members\[0\]\.id" must be a positive integer/,
  );
  assert.throws(() => parseForwardRequest({ kind: "drop" }), /"kind" must/);
  assert.throws(() => parseForwardReply({ ok: false }), /"error" must/);
  assert.deepEqual(parseForwardReply({ ok: true, value: 1 }), {
    ok: true,
    value: 1,
  });
});
