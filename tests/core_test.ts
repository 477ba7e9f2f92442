/**
 * The pure Raft core, one rule per test. Sections cited are those of the
 * Raft paper (extended version) unless they name Ongaro's dissertation.
 */

import assert from "node:assert/strict";
import { validateMembers } from "../lib/core/membership.ts";
import { Quorum } from "../lib/core/quorum.ts";
import { NotLeaderError, type RaftCore } from "../lib/core/raft.ts";
import {
  type AppendRequest,
  type AppendResponse,
  type Entry,
  EntryKind,
  type HeartbeatRequest,
  type Message,
  type NodeId,
  type VoteRequest,
} from "../lib/core/types.ts";
import {
  Cluster,
  configEntry,
  drain,
  electionTicks,
  entries,
  entry,
  heartbeatTicks,
  makeCore,
  members,
  mulberry32,
} from "./core_helpers.ts";

// Helpers

/** A three- (or `size`-) node cluster where node 1 leads term 2. */
function elected(size = 3, joining: NodeId[] = []): Cluster {
  const cluster = Cluster.bootstrap(size);
  for (const id of joining) cluster.add(makeCore(id));
  cluster.node(1).campaign();
  cluster.deliver();
  assert.equal(cluster.node(1).role, "leader");
  assert.equal(cluster.node(1).commit, 2);
  return cluster;
}

/** Follower 2 of voters {1, 2, 3} holding `log` in `term`, commit 1. */
function follower(log: Entry[], term: number): RaftCore {
  const hardState = { term, vote: 0, commit: 1 };
  const core = makeCore(2, { entries: log, hardState });
  drain(core);
  return core;
}

function voteRequest(
  from: NodeId,
  to: NodeId,
  term: number,
  last: { index: number; term: number },
  pre = false,
): VoteRequest {
  return {
    type: "vote",
    from,
    to,
    term,
    pre,
    lastIndex: last.index,
    lastTerm: last.term,
    transfer: false,
  };
}

function appendRequest(
  term: number,
  prev: { index: number; term: number },
  sent: Entry[],
  commit: number,
): AppendRequest {
  return {
    type: "append",
    from: 1,
    to: 2,
    term,
    prevIndex: prev.index,
    prevTerm: prev.term,
    entries: sent,
    commit,
  };
}

function rejection(
  term: number,
  rejectedIndex: number,
  conflictTerm: number,
  conflictIndex: number,
): AppendResponse {
  return {
    type: "appendResponse",
    from: 2,
    to: 1,
    term,
    success: false,
    matchIndex: 0,
    rejectedIndex,
    conflictTerm,
    conflictIndex,
  };
}

function success(term: number, matchIndex: number): AppendResponse {
  return {
    type: "appendResponse",
    from: 2,
    to: 1,
    term,
    success: true,
    matchIndex,
    rejectedIndex: 0,
    conflictTerm: 0,
    conflictIndex: 0,
  };
}

/** Rejections `from` sent, as [rejectedIndex, conflictTerm, conflictIndex]. */
function rejectionsFrom(messages: Message[], from: NodeId): number[][] {
  return messages
    .filter((message): message is AppendResponse =>
      message.type === "appendResponse" && message.from === from &&
      !message.success
    )
    .map((message) => [
      message.rejectedIndex,
      message.conflictTerm,
      message.conflictIndex,
    ]);
}

/** Old voters {1, 2, 3} led by 1 in term 2, joining nodes 4 and 5. */
function jointCluster(): Cluster {
  return elected(3, [4, 5]);
}

const cfg123 = configEntry(1, 1, [1, 2, 3]);

// Quorum and membership validation

Deno.test("Quorum.committedIndex() returns the index a majority holds (5.3)", () => {
  const quorum = new Quorum([1, 2, 3]);
  const match = new Map([[1, 9], [2, 4], [3, 1]]);

  assert.equal(quorum.committedIndex((id) => match.get(id) ?? 0), 4);
});

Deno.test("Quorum.committedIndex() takes the lower of both majorities when joint (6)", () => {
  const quorum = new Quorum([1, 2, 3], [3, 4, 5]);
  // A majority of the union {1..5} holds 6; of {3, 4, 5} only 2.
  const match = new Map([[1, 9], [2, 7], [3, 2], [4, 6], [5, 1]]);

  assert.equal(quorum.committedIndex((id) => match.get(id) ?? 0), 2);
});

Deno.test("Quorum.voteResult() is won by a majority and lost once a majority refused (5.2)", () => {
  const quorum = new Quorum([1, 2, 3]);
  const outcome = (answers: [NodeId, boolean][]) =>
    quorum.voteResult((id) => new Map(answers).get(id));

  assert.deepEqual(
    [
      outcome([[1, true]]),
      outcome([[1, true], [2, true]]),
      outcome([[1, true], [2, false], [3, false]]),
    ],
    ["pending", "won", "lost"],
  );
});

Deno.test("Quorum.voteResult() needs a majority of each set when joint (6)", () => {
  const quorum = new Quorum([1, 4, 5], [1, 2, 3]);
  const outcome = (answers: [NodeId, boolean][]) =>
    quorum.voteResult((id) => new Map(answers).get(id));

  assert.deepEqual(
    [
      outcome([[1, true], [2, true], [3, true]]),
      outcome([[1, true], [4, true], [5, true]]),
      outcome([[1, true], [2, true], [4, true]]),
      outcome([[1, true], [2, true], [3, true], [4, false], [5, false]]),
    ],
    ["pending", "pending", "won", "lost"],
  );
});

Deno.test("Quorum.voteResult() of an empty configuration is lost", () => {
  const quorum = new Quorum([]);

  assert.deepEqual(
    [quorum.voteResult(() => true), quorum.committedIndex(() => 7)],
    ["lost", 0],
  );
});

Deno.test("validateMembers() rejects an empty list", () => {
  assert.throws(() => validateMembers([]), {
    name: "TypeError",
    message: "Invalid members: expected a non-empty list",
  });
});

Deno.test("validateMembers() rejects a duplicate id", () => {
  const twice = [{ id: 1, url: "http://a" }, { id: 1, url: "http://b" }];

  assert.throws(() => validateMembers(twice), {
    name: "TypeError",
    message: "Invalid members: node id 1 appears twice",
  });
});

Deno.test("validateMembers() rejects a duplicate URL", () => {
  const twice = [{ id: 1, url: "http://a" }, { id: 2, url: "http://a" }];

  assert.throws(() => validateMembers(twice), {
    name: "TypeError",
    message: "Invalid members: URL http://a appears twice",
  });
});

Deno.test("validateMembers() rejects a non-positive id", () => {
  for (const id of [0, -1]) {
    assert.throws(() => validateMembers([{ id, url: "http://a" }]), {
      name: "TypeError",
      message: "Invalid members: id must be a positive integer",
    });
  }
});

// Elections (5.2, dissertation 9.6)

Deno.test("tick() starts a pre-vote after the election timeout, keeping the term (9.6)", () => {
  const core = makeCore(1, { bootstrap: [1, 2, 3], random: () => 0 });
  drain(core);
  for (let ticks = 1; ticks < electionTicks; ticks++) core.tick();
  assert.equal(core.role, "follower");

  core.tick();

  const last = { index: 1, term: 1 };
  assert.deepEqual(
    { role: core.role, term: core.term, messages: core.ready().messages },
    {
      role: "precandidate",
      term: 1,
      messages: [
        voteRequest(1, 2, 2, last, true),
        voteRequest(1, 3, 2, last, true),
      ],
    },
  );
});

Deno.test("step() turns a won pre-vote into an election of the next term (5.2, 9.6)", () => {
  const core = makeCore(1, { bootstrap: [1, 2, 3], random: () => 0 });
  const voter = makeCore(2, { bootstrap: [1, 2, 3] });
  drain(core);
  drain(voter);
  for (let ticks = 0; ticks < electionTicks; ticks++) core.tick();
  const preVote = drain(core).find((message) => message.to === 2)!;

  voter.step(preVote);
  for (const answer of drain(voter)) core.step(answer);

  const ready = core.ready();
  const last = { index: 1, term: 1 };
  assert.deepEqual(
    { role: core.role, hardState: ready.hardState, messages: ready.messages },
    {
      role: "candidate",
      hardState: { term: 2, vote: 1, commit: 1 },
      messages: [voteRequest(1, 2, 2, last), voteRequest(1, 3, 2, last)],
    },
  );
});

Deno.test("campaign() wins with a majority and appends a no-op of the new term (5.2, 8)", () => {
  const cluster = Cluster.bootstrap(3);
  cluster.isolate(3);

  cluster.node(1).campaign();
  cluster.deliver();

  const leader = cluster.node(1);
  assert.deepEqual(
    { role: leader.role, term: leader.term, log: leader.entries(2) },
    {
      role: "leader",
      term: 2,
      log: [{ index: 2, term: 2, kind: EntryKind.Noop, data: "" }],
    },
  );
});

/** Ticks `size` nodes under changing partitions and message loss. */
function partitionedRun(size: number, seed: number): Cluster {
  const cluster = Cluster.bootstrap(size, seed);
  const random = mulberry32(seed);
  let cut = new Set<NodeId>();
  cluster.drop = (message) =>
    cut.has(message.from) !== cut.has(message.to) || random() < 0.05;
  for (let tick = 0; tick < 3_000; tick++) {
    if (tick % 60 === 0) {
      cut = new Set([...cluster.nodes.keys()].filter(() => random() < 0.4));
    }
    const rival = 1 + Math.floor(random() * size * 20);
    if (rival <= size) cluster.node(rival).campaign();
    cluster.tick();
  }
  return cluster;
}

for (const size of [3, 5]) {
  Deno.test(`RaftCore elects at most one leader per term with ${size} nodes under partitions (5.2)`, () => {
    for (const seed of [1, 2, 3]) {
      const cluster = partitionedRun(size, seed * size);

      const shared = [...cluster.leadersByTerm]
        .filter(([, leaders]) => leaders.size > 1)
        .map(([term, leaders]) => [term, [...leaders]]);
      assert.deepEqual(shared, [], `seed ${seed}`);
      assert.ok(
        cluster.leadersByTerm.size >= 5,
        `Too few elections with seed ${seed}: ${cluster.leadersByTerm.size}`,
      );
    }
  });
}

// Votes (5.2, 5.4.1)

Deno.test("step() grants a vote, adopts the term and sends the answer only after persisting (5.2)", () => {
  const voter = follower([cfg123], 1);

  voter.step(voteRequest(1, 2, 2, { index: 1, term: 1 }));

  assert.deepEqual(voter.ready(), {
    messagesNow: [],
    hardState: { term: 2, vote: 1, commit: 1 },
    entries: [],
    messages: [
      {
        type: "voteResponse",
        from: 2,
        to: 1,
        term: 2,
        pre: false,
        granted: true,
      },
    ],
    committed: [],
    reads: [],
  });
});

Deno.test("step() refuses a second candidate of the same term (5.2)", () => {
  const voter = follower([cfg123], 1);
  voter.step(voteRequest(1, 2, 2, { index: 1, term: 1 }));
  drain(voter);

  voter.step(voteRequest(3, 2, 2, { index: 1, term: 1 }));

  assert.deepEqual(drain(voter), [
    {
      type: "voteResponse",
      from: 2,
      to: 3,
      term: 2,
      pre: false,
      granted: false,
    },
  ]);
});

Deno.test("step() refuses a vote to a log with a lower last term (5.4.1)", () => {
  const voter = follower([cfg123, entry(2, 2)], 2);

  voter.step(voteRequest(1, 2, 3, { index: 5, term: 1 }));

  assert.deepEqual(drain(voter), [
    {
      type: "voteResponse",
      from: 2,
      to: 1,
      term: 3,
      pre: false,
      granted: false,
    },
  ]);
});

Deno.test("step() refuses a vote to a shorter log of the same last term (5.4.1)", () => {
  const voter = follower([cfg123, ...entries(2, 3, 2)], 2);

  voter.step(voteRequest(1, 2, 3, { index: 2, term: 2 }));

  assert.deepEqual(drain(voter), [
    {
      type: "voteResponse",
      from: 2,
      to: 1,
      term: 3,
      pre: false,
      granted: false,
    },
  ]);
});

// Pre-vote and leader lease (dissertation 9.6, 4.2.3)

Deno.test("tick() does not raise the term of a partitioned node (9.6)", () => {
  const cluster = elected();
  cluster.isolate(3);

  cluster.tick(10 * electionTicks);

  assert.deepEqual(
    [cluster.node(3).term, cluster.node(3).role],
    [2, "precandidate"],
  );
});

Deno.test("step() lets a rejoining partitioned node follow the leader in place (9.6)", () => {
  const cluster = elected();
  cluster.isolate(3);
  cluster.tick(10 * electionTicks);

  cluster.heal();
  cluster.tick(2 * electionTicks, [3]);
  cluster.tick(electionTicks);

  const [leader, rejoined] = [cluster.node(1), cluster.node(3)];
  assert.deepEqual(
    [leader.role, leader.term, rejoined.leader, rejoined.term],
    ["leader", 2, 1, 2],
  );
});

Deno.test("step() refuses a pre-vote within the leader lease (9.6)", () => {
  const cluster = elected();
  const voter = cluster.node(2);

  voter.step(voteRequest(3, 2, 3, { index: 2, term: 2 }, true));

  assert.deepEqual(drain(voter), [
    {
      type: "voteResponse",
      from: 2,
      to: 3,
      term: 2,
      pre: true,
      granted: false,
    },
  ]);
});

Deno.test("step() ignores a higher-term vote request within the leader lease (4.2.3)", () => {
  const cluster = elected();
  const voter = cluster.node(2);

  voter.step(voteRequest(3, 2, 5, { index: 2, term: 2 }));

  assert.deepEqual([voter.term, voter.leader, drain(voter)], [2, 1, []]);
});

// Log matching and repair (5.3)

Deno.test("step() replaces a conflicting suffix with the leader's entries (5.3)", () => {
  const core = follower([cfg123, ...entries(2, 4, 2)], 3);

  core.step(appendRequest(3, { index: 2, term: 2 }, [entry(3, 3)], 1));

  assert.deepEqual(core.entries(), [cfg123, entry(2, 2), entry(3, 3)]);
});

Deno.test("step() keeps matching entries past a stale AppendEntries (5.3)", () => {
  const log = [cfg123, ...entries(2, 4, 3)];
  const core = follower(log, 3);

  core.step(appendRequest(3, { index: 1, term: 1 }, [entry(2, 3)], 1));

  assert.deepEqual([core.entries(), drain(core)], [log, [success(3, 2)]]);
});

Deno.test("step() rejects AppendEntries whose previous entry does not match (5.3)", () => {
  const log = [cfg123, entry(2, 2)];
  const core = follower(log, 3);

  core.step(appendRequest(3, { index: 2, term: 3 }, [entry(3, 3)], 3));

  assert.deepEqual(
    [core.entries(), core.commit, drain(core)],
    [log, 1, [rejection(3, 2, 2, 2)]],
  );
});

Deno.test("step() hints the conflicting term and its first index on rejection (5.3)", () => {
  const core = follower([cfg123, ...entries(2, 4, 2)], 3);

  core.step(appendRequest(3, { index: 4, term: 3 }, [], 1));

  assert.deepEqual(drain(core), [rejection(3, 4, 2, 2)]);
});

Deno.test("step() hints lastIndex + 1 when the log is too short (5.3)", () => {
  const core = follower([cfg123, entry(2, 2)], 3);

  core.step(appendRequest(3, { index: 6, term: 3 }, [], 1));

  assert.deepEqual(drain(core), [rejection(3, 6, 0, 3)]);
});

Deno.test("step() repairs a follower with a long stale suffix in two rejections (5.3)", () => {
  const leaderLog = [cfg123, ...entries(2, 6, 2), ...entries(7, 51, 3)];
  const hardState = { term: 3, vote: 0, commit: 1 };
  const cluster = new Cluster([
    makeCore(1, { entries: leaderLog, hardState }),
    makeCore(2, {
      entries: [cfg123, ...entries(2, 11, 2)],
      hardState: { term: 2, vote: 0, commit: 1 },
    }),
    makeCore(3, { entries: leaderLog, hardState }),
  ]);
  cluster.isolate(2);
  cluster.node(1).campaign();
  cluster.deliver();
  cluster.delivered.length = 0;

  cluster.heal();
  cluster.tick(heartbeatTicks);

  const probes = cluster.delivered
    .filter((message) => message.type === "append" && message.to === 2)
    .map((message) => (message as AppendRequest).prevIndex);
  assert.deepEqual(
    [rejectionsFrom(cluster.delivered, 2), probes, cluster.node(2).lastIndex],
    [[[51, 0, 12], [11, 2, 2]], [51, 11, 6], 52],
  );
});

Deno.test("step() resends an AppendEntries lost while streaming after a heartbeat (5.3)", () => {
  const cluster = elected();
  const lost = (message: Message) =>
    message.type === "append" && message.to === 2 &&
    message.entries.length > 0;
  cluster.isolate(3);
  const isolated = cluster.drop;
  cluster.drop = (message) => isolated(message) || lost(message);
  cluster.node(1).propose("x");
  cluster.deliver();
  assert.equal(cluster.node(1).commit, 2);

  cluster.drop = isolated;
  cluster.tick(2 * heartbeatTicks);

  assert.deepEqual([cluster.node(1).commit, cluster.node(2).lastIndex], [3, 3]);
});

Deno.test("step() bounds the payload of one AppendEntries, yet sends a large entry alone", () => {
  const big = { ...entry(2, 1), data: "x".repeat(10) };
  const small = [3, 4, 5].map((index) => ({ ...entry(index, 1), data: "abc" }));
  const hardState = { term: 1, vote: 0, commit: 1 };
  const cluster = new Cluster([
    makeCore(1, {
      entries: [cfg123, big, ...small],
      hardState,
      appendBytesMax: 6,
    }),
    makeCore(2, { entries: [cfg123], hardState }),
    makeCore(3, { entries: [cfg123], hardState }),
  ]);
  cluster.node(1).campaign();
  cluster.deliver();

  const carried = cluster.delivered
    .filter((message) => message.type === "append" && message.to === 2)
    .map((message) =>
      message.type === "append" ? message.entries.map((e) => e.index) : []
    )
    .filter((indexes) => indexes.length > 0);
  // Probes that carry only the new leader's no-op (6) come first.
  assert.deepEqual(carried.filter((indexes) => indexes[0] !== 6), [
    [2],
    [3, 4],
    [5, 6],
  ]);
  assert.equal(cluster.node(2).lastIndex, 6);
});

// Commitment (5.4.2, dissertation 10.2.1)

/**
 * Node 1 with entry 2 of term 2 leads term 4; follower 2 lacks entry 2 and
 * node 3 is cut off. One entry per AppendEntries, so entry 2 reaches
 * follower 2 before the leader's no-op does.
 */
function figure8(): Cluster {
  const hardState = { term: 3, vote: 0, commit: 1 };
  const cluster = new Cluster([
    makeCore(1, {
      entries: [cfg123, entry(2, 2)],
      hardState,
      entriesPerAppendMax: 1,
    }),
    makeCore(2, { entries: [cfg123], hardState }),
    makeCore(3, { entries: [cfg123], hardState }),
  ]);
  cluster.isolate(3);
  cluster.node(1).campaign();
  cluster.runUntil(() => cluster.node(1).progressOf(2)?.match === 2);
  return cluster;
}

Deno.test("step() does not commit an earlier term's entry by counting replicas (5.4.2)", () => {
  const cluster = figure8();
  const leader = cluster.node(1);

  assert.deepEqual(
    [leader.term, leader.termAt(2), cluster.node(2).termAt(2), leader.commit],
    [4, 2, 2, 1],
  );
});

Deno.test("step() commits an earlier term's entry with one of the current term (5.4.2)", () => {
  const cluster = figure8();

  cluster.deliver();

  assert.deepEqual([cluster.node(1).commit, cluster.node(1).termAt(3)], [3, 4]);
});

Deno.test("advance() lets a leader count its own entry only once persisted (10.2.1)", () => {
  const cluster = elected();
  const leader = cluster.node(1);
  cluster.isolate(3);
  cluster.held.add(1);
  leader.propose("x");
  cluster.deliver();
  assert.deepEqual([leader.progressOf(2)?.match, leader.commit], [3, 2]);

  cluster.held.delete(1);
  cluster.deliver();

  assert.equal(leader.commit, 3);
});

// Stale terms (5.1)

Deno.test("step() ignores an AppendEntries of an older term and answers with the newer one (5.1)", () => {
  const log = [cfg123, entry(2, 2)];
  const core = follower(log, 3);

  core.step(appendRequest(2, { index: 2, term: 2 }, [entry(3, 2)], 3));

  assert.deepEqual(
    [core.entries(), core.commit, core.leader, drain(core)],
    [log, 1, 0, [rejection(3, 2, 0, 0)]],
  );
});

Deno.test("step() ignores a heartbeat of an older term and answers with the newer one (5.1)", () => {
  const core = follower([cfg123, entry(2, 2)], 3);
  const heartbeat: HeartbeatRequest = {
    type: "heartbeat",
    from: 1,
    to: 2,
    term: 2,
    commit: 2,
    round: 1,
  };

  core.step(heartbeat);

  assert.deepEqual(
    [core.commit, core.leader, drain(core)],
    [1, 0, [rejection(3, 0, 0, 0)]],
  );
});

Deno.test("step() makes a stale leader step down on an answer of a newer term (5.1)", () => {
  const cluster = elected();
  cluster.isolate(1);
  cluster.tick(3 * electionTicks, [2, 3]);
  const newLeader = cluster.leader()!;
  assert.deepEqual([newLeader.term, cluster.node(1).role], [3, "leader"]);

  cluster.heal();
  cluster.tick(heartbeatTicks, [1]);

  const stale = cluster.node(1);
  assert.deepEqual([stale.role, stale.term], ["follower", 3]);
});

// Check-quorum (dissertation 6.2)

Deno.test("tick() makes a leader cut off from a quorum for electionTicks step down (6.2)", () => {
  const cluster = elected();
  cluster.tick(electionTicks);
  cluster.isolate(1);
  cluster.tick(electionTicks - 1);
  assert.equal(cluster.node(1).role, "leader");

  cluster.tick();

  assert.deepEqual([cluster.node(1).role, cluster.node(1).leader], [
    "follower",
    0,
  ]);
});

Deno.test("tick() keeps a leader that a majority still answers (6.2)", () => {
  const cluster = elected();
  cluster.isolate(3);

  cluster.tick(5 * electionTicks);

  assert.deepEqual([cluster.node(1).role, cluster.node(1).term], ["leader", 2]);
});

// Read index (6.4)

Deno.test("readIndex() answers only once a majority acknowledged a heartbeat round (6.4)", () => {
  const cluster = elected();
  const [leader, peer] = [cluster.node(1), cluster.node(2)];
  leader.readIndex(7);
  const sent = leader.ready();
  leader.advance(sent);
  assert.deepEqual(sent.reads, []);

  peer.step(sent.messagesNow.find((message) => message.to === 2)!);
  for (const answer of drain(peer)) leader.step(answer);

  assert.deepEqual(leader.ready().reads, [{ id: 7, index: 2 }]);
});

Deno.test("readIndex() waits until the leader committed an entry of its term (6.4)", () => {
  const cluster = Cluster.bootstrap(3);
  cluster.drop = (message) => message.type === "appendResponse";
  cluster.node(1).campaign();
  cluster.deliver();
  cluster.node(1).readIndex(7);
  cluster.deliver();
  assert.deepEqual([cluster.node(1).commit, cluster.reads.get(1)], [1, []]);

  cluster.heal();
  cluster.tick(heartbeatTicks);

  assert.deepEqual(cluster.reads.get(1), [{ id: 7, index: 2 }]);
});

Deno.test("readIndex() answers null once the leader steps down (6.4)", () => {
  const cluster = elected();
  cluster.isolate(1);
  cluster.node(1).readIndex(7);

  cluster.tick(2 * electionTicks, [1]);

  assert.deepEqual(
    [cluster.node(1).role, cluster.reads.get(1)],
    ["follower", [{ id: 7, index: null }]],
  );
});

// Membership changes (6)

Deno.test("proposeMembership() appends the joint configuration C_old,new (6)", () => {
  const cluster = jointCluster();
  const leader = cluster.node(1);

  const index = leader.proposeMembership(members(1, 4, 5));

  assert.deepEqual(
    [index, leader.entries(3), leader.membership.joint],
    [3, [configEntry(3, 2, [1, 4, 5], [1, 2, 3])], true],
  );
});

Deno.test("step() does not commit C_old,new with a majority of C_old alone (6)", () => {
  const cluster = jointCluster();
  cluster.isolate(4, 5);
  cluster.node(1).proposeMembership(members(1, 4, 5));

  cluster.deliver();

  const leader = cluster.node(1);
  assert.deepEqual(
    [leader.progressOf(2)?.match, leader.progressOf(3)?.match, leader.commit],
    [3, 3, 2],
  );
});

Deno.test("step() does not commit C_old,new with a majority of C_new alone (6)", () => {
  const cluster = jointCluster();
  cluster.isolate(2, 3);
  cluster.node(1).proposeMembership(members(1, 4, 5));

  cluster.deliver();

  const leader = cluster.node(1);
  assert.deepEqual(
    [leader.progressOf(4)?.match, leader.progressOf(5)?.match, leader.commit],
    [3, 3, 2],
  );
});

Deno.test("step() commits C_old,new with a majority of each configuration (6)", () => {
  const cluster = jointCluster();
  const leader = cluster.node(1);
  cluster.isolate(3, 5);
  leader.proposeMembership(members(1, 4, 5));

  cluster.runUntil(() => leader.commit > 2);

  assert.equal(leader.commit, 3);
});

Deno.test("step() appends C_new once C_old,new commits (6)", () => {
  const cluster = jointCluster();
  const leader = cluster.node(1);
  leader.proposeMembership(members(1, 4, 5));

  cluster.deliver();

  assert.deepEqual(
    [leader.entries(4), leader.commit, leader.membership.joint],
    [[configEntry(4, 2, [1, 4, 5])], 4, false],
  );
});

Deno.test("step() makes a leader outside C_new step down once C_new commits (6)", () => {
  const cluster = elected(3, [4]);
  const leader = cluster.node(1);
  leader.proposeMembership(members(2, 3, 4));

  cluster.deliver();

  assert.deepEqual(
    [leader.role, leader.commit, leader.membershipIndex],
    ["follower", 4, 4],
  );
});

Deno.test("proposeMembership() throws RangeError while a change is joint (6)", () => {
  const cluster = jointCluster();
  cluster.isolate(4, 5);
  cluster.node(1).proposeMembership(members(1, 4, 5));
  cluster.deliver();

  assert.throws(() => cluster.node(1).proposeMembership(members(1, 2, 3)), {
    name: "RangeError",
    message: "Cannot start a membership change while one is in progress: " +
      "configuration at 3 is joint",
  });
});

Deno.test("membership is the latest configuration entry, even uncommitted (6)", () => {
  const cluster = jointCluster();
  cluster.isolate(4, 5);
  cluster.node(1).proposeMembership(members(1, 4, 5));

  cluster.deliver();

  const peer = cluster.node(2);
  assert.deepEqual(
    [peer.commit, peer.membershipIndex, peer.membership.joint],
    [2, 3, true],
  );
});

Deno.test("membership rolls back when a new leader truncates its entry (6)", () => {
  const prefix = [cfg123, {
    index: 2,
    term: 2,
    kind: EntryKind.Noop,
    data: "",
  }];
  const hardState = { term: 2, vote: 0, commit: 2 };
  const cluster = new Cluster([
    makeCore(1, { entries: prefix, hardState }),
    makeCore(2, {
      entries: [...prefix, configEntry(3, 2, [1, 4, 5], [1, 2, 3])],
      hardState,
    }),
    makeCore(3, { entries: prefix, hardState }),
  ]);
  assert.equal(cluster.node(2).membershipIndex, 3);

  cluster.node(3).campaign();
  cluster.deliver();

  const peer = cluster.node(2);
  assert.deepEqual(
    [peer.termAt(3), peer.membershipIndex, peer.membership.joint],
    [3, 1, false],
  );
});

Deno.test("campaign() and tick() never start an election in an empty configuration (4.1)", () => {
  const joining = makeCore(4);

  for (let ticks = 0; ticks < 10 * electionTicks; ticks++) joining.tick();
  joining.campaign();

  assert.deepEqual([joining.role, joining.term, joining.ready().hardState], [
    "follower",
    0,
    null,
  ]);
});

Deno.test("addLearner() replicates to a learner that does not count for commit (4.2.1)", () => {
  const cluster = elected(3, [4]);
  const leader = cluster.node(1);
  cluster.isolate(2, 3);
  leader.addLearner(4);

  leader.propose("x");
  cluster.deliver();

  assert.deepEqual(
    [cluster.node(4).lastIndex, leader.progressOf(4)?.match, leader.commit],
    [3, 3, 2],
  );
});

// Leadership transfer (dissertation 3.10)

Deno.test("transferLeadership() makes the target campaign past the followers' lease", () => {
  const cluster = elected();
  const old = cluster.node(1);

  assert.equal(old.transferLeadership(2), 2);
  cluster.deliver();

  const roles = [1, 2, 3].map((id) => cluster.node(id).role);
  assert.deepEqual(roles, ["follower", "leader", "follower"]);
  assert.deepEqual(
    [cluster.node(2).term, cluster.node(3).leader, old.leader],
    [3, 2, 2],
  );
});

Deno.test("transferLeadership() lets a lagging target catch up first", () => {
  const cluster = elected();
  const old = cluster.node(1);
  cluster.isolate(3);
  old.propose("a");
  old.propose("b");
  cluster.deliver();
  cluster.heal();
  const lastIndex = old.lastIndex;

  old.transferLeadership(3);
  cluster.deliver();

  assert.equal(cluster.node(3).role, "leader");
  assert.deepEqual(
    cluster.node(3).entries(lastIndex - 1, lastIndex).map((e) => e.data),
    ["a", "b"],
  );
});

Deno.test("propose() is refused while leadership is handed over", () => {
  const cluster = elected();
  const old = cluster.node(1);
  cluster.isolate(2);

  old.transferLeadership(2);

  assert.throws(() => old.propose("late"), NotLeaderError);
});

// Commit notices

Deno.test("step() tells followers of a new commit at the next tick, not at once", () => {
  const cluster = elected();
  const leader = cluster.node(1);

  const { index } = leader.propose("x");
  cluster.deliver();
  const before = [
    leader.commit,
    cluster.node(2).commit,
    cluster.node(3).commit,
  ];
  cluster.tick(1, [1]);

  assert.deepEqual(before, [index, index - 1, index - 1]);
  assert.deepEqual([cluster.node(2).commit, cluster.node(3).commit], [
    index,
    index,
  ]);
});

Deno.test("noticeCommit() tells the asking follower of the commit at once", () => {
  const cluster = elected();
  const leader = cluster.node(1);

  const { index } = leader.propose("x");
  leader.noticeCommit(2, index);
  cluster.deliver();

  assert.deepEqual(
    [leader.commit, cluster.node(2).commit, cluster.node(3).commit],
    [index, index, index - 1],
  );
});
