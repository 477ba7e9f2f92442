/**
 * Deterministic simulation testing of whole lilraft clusters.
 *
 * {@linkcode simulate} runs a cluster of real {@linkcode Server}s over the
 * in-memory network and storage on one virtual clock, all driven by one
 * seed: elections, faults (loss, delay, duplication, partitions, crashes,
 * slow disks, membership changes) and client choices. After every event it
 * checks the safety properties of Raft (Election Safety, Log Matching,
 * Leader Completeness, State Machine Safety, durable terms and votes,
 * commit backed by a quorum); at the end it checks liveness after the
 * faults stop and that the client history is linearizable. The same seed
 * always replays the same run.
 *
 * Bring your own commands, context and sequential model; see
 * {@linkcode simulate} for an example.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Command, CommandClass } from "./command.ts";
import { Config, HttpNode } from "./config.ts";
import type { RaftCore } from "./core/raft.ts";
import {
  type Entry,
  EntryKind,
  type HardState,
  type Member,
  type Message,
  type NodeId,
} from "./core/types.ts";
import type { LogFields, Logger } from "./logger.ts";
import { inspectCore, Server } from "./server.ts";
import { MemoryStorage } from "./storage/memory.ts";
import type {
  SaveBatch,
  Storage,
  StorageStats,
  StoredState,
} from "./storage/storage.ts";
import { MemoryNetwork } from "./transport/memory.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "./transport/transport.ts";

export type { Command, CommandClass } from "./command.ts";
export type { NodeId } from "./core/types.ts";

// ---------------------------------------------------------------- random

/**
 * A small seeded pseudo-random generator (sfc32) returning numbers in
 * [0, 1). The same seed always gives the same sequence.
 *
 * @param seed Any integer; only its low 32 bits count.
 * @returns The generator.
 *
 * @example Two generators with one seed agree
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { seededRandom } from "./testing.ts";
 *
 * equal(seededRandom(7)(), seededRandom(7)());
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0, b >>>= 0, c >>>= 0, d >>>= 0;
    const t = (a + b | 0) + d | 0;
    d = d + 1 | 0;
    a = b ^ b >>> 9;
    b = c + (c << 3) | 0;
    c = c << 21 | c >>> 11;
    c = c + t | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let round = 0; round < 12; round++) next();
  return next;
}

function randomInt(random: () => number, below: number): number {
  return Math.floor(random() * below);
}

function pick<T>(random: () => number, items: readonly T[]): T | undefined {
  return items[randomInt(random, items.length)];
}

function forkRandom(random: () => number): () => number {
  return seededRandom(randomInt(random, 2 ** 32));
}

// ---------------------------------------------------------- virtual time

interface TimedEvent {
  time: number;
  sequence: number;
  run: () => void;
  cancelled: boolean;
  owner: NodeClock | undefined;
}

/** One shared virtual clock: a queue of events ordered by time. */
class VirtualTime {
  now = 0;
  #heap: TimedEvent[] = [];
  #sequence = 0;

  at(time: number, run: () => void, owner?: NodeClock): TimedEvent {
    const event = {
      time: Math.max(time, this.now),
      sequence: this.#sequence++,
      run,
      cancelled: false,
      owner,
    };
    this.#push(event);
    return event;
  }

  /** The next live event due by `limit`, removed from the queue. */
  next(limit: number): TimedEvent | undefined {
    while (this.#heap.length > 0) {
      const event = this.#heap[0]!;
      if (event.cancelled || event.owner?.dead) {
        this.#pop();
        continue;
      }
      if (event.time > limit) return undefined;
      return this.#pop();
    }
    return undefined;
  }

  #push(event: TimedEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let at = heap.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!before(heap[at]!, heap[parent]!)) break;
      [heap[at], heap[parent]] = [heap[parent]!, heap[at]!];
      at = parent;
    }
  }

  #pop(): TimedEvent {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    heap[0] = last;
    let at = 0;
    while (true) {
      const left = 2 * at + 1;
      const right = left + 1;
      let least = at;
      if (left < heap.length && before(heap[left]!, heap[least]!)) least = left;
      if (right < heap.length && before(heap[right]!, heap[least]!)) {
        least = right;
      }
      if (least === at) return top;
      [heap[at], heap[least]] = [heap[least]!, heap[at]!];
      at = least;
    }
  }
}

function before(a: TimedEvent, b: TimedEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
}

/** One node's view of the virtual clock; its timers die with the node. */
class NodeClock implements Clock {
  dead = false;
  readonly #time: VirtualTime;

  constructor(time: VirtualTime) {
    this.#time = time;
  }

  now(): number {
    return this.#time.now;
  }

  setTimer(run: () => void, ms: number): unknown {
    return this.#time.at(this.#time.now + Math.max(0, ms), run, this);
  }

  clearTimer(handle: unknown): void {
    if (handle && typeof handle === "object" && "cancelled" in handle) {
      (handle as TimedEvent).cancelled = true;
    }
  }
}

// ------------------------------------------------------------ public types

/** The faults a simulation may inject; see {@linkcode allFaults}. */
export type Fault =
  | "network"
  | "partition"
  | "crash"
  | "disk"
  | "membership";

/** Every fault: message loss, delay, duplication and reordering;
 * symmetric and one-way partitions; crashes and restarts; slow disks;
 * membership changes. */
export const allFaults: readonly Fault[] = [
  "network",
  "partition",
  "crash",
  "disk",
  "membership",
];

/**
 * One client operation: a command through `exec` (a write) or a query
 * through `read`. `input` is what the {@linkcode Model} sees; `key`
 * partitions the history for the linearizability check (operations on
 * different keys must not affect each other in the model).
 */
export type Operation<C> =
  | {
    kind: "exec";
    key?: string;
    input: unknown;
    command: Command<C, unknown>;
  }
  | {
    kind: "read";
    key?: string;
    input: unknown;
    query: (context: C) => unknown;
  };

/**
 * The sequential specification of the replicated object, one instance per
 * key. `step` applies an operation's input and returns the new state and
 * the output the operation must have produced; outputs are compared as
 * JSON. An `exec` whose `apply` threw is recorded with the output
 * `{ error: message }`.
 */
export interface Model<S> {
  /** The state of a key before any operation. */
  init(): S;
  /** Applies `input` to `state`: the next state and the expected output. */
  step(state: S, input: unknown): [S, unknown];
}

/** What simulated clients do, and what their history must satisfy. */
export interface Workload<C, S = unknown> {
  /**
   * Draws the next operation of a client.
   *
   * @param random The seeded random source; use only this.
   * @param client The client's number, from 0.
   */
  next(random: () => number, client: number): Operation<C>;
  /** The sequential specification for the linearizability check. */
  model: Model<S>;
}

/** Options of {@linkcode simulate}. */
export interface SimulationOptions<C, S = unknown> {
  /** Drives everything: elections, faults and clients. */
  seed: number;
  /** Founding nodes: 3 or 5. Default 3. */
  nodes?: number;
  /** The faults to inject. Default {@linkcode allFaults}. */
  faults?: readonly Fault[];
  /** A fresh, empty context for each node (and each restart). */
  context: () => C;
  /** The command classes every node registers. */
  commands: readonly CommandClass<C>[];
  /** What the clients do, and the model of the replicated object. */
  workload: Workload<C, S>;
  /**
   * Your invariant over the contexts of the running nodes, checked after
   * every event in which some node applied entries. Throw to fail.
   */
  invariant?: (contexts: ReadonlyMap<NodeId, C>) => void;
  /**
   * A digest of a context. Two nodes that applied the same number of
   * entries must have the same digest. Default `JSON.stringify`.
   */
  fingerprint?: (context: C) => string;
  /** Concurrent clients. Default 4. */
  clients?: number;
  /** Virtual milliseconds of faults before the network heals. Default 3000. */
  faultMs?: number;
  /** Virtual milliseconds after healing for liveness. Default 3000. */
  livenessMs?: number;
  /** Keep a trace of this many events around a failure. Default 0. */
  trace?: number;
  /** The command that replays a run, with `{seed}` in it; for messages. */
  replay?: string;
}

/** Counters of one run. */
export interface SimulationStats {
  /** Events handled. */
  events: number;
  /** Virtual milliseconds simulated. */
  virtualMs: number;
  /** Client operations that completed with a result. */
  completed: number;
  /** Writes whose outcome stayed unknown (timed out, node crashed). */
  unknown: number;
  /** Operations that definitely failed (not committed, read errors). */
  failed: number;
  /** Crashes injected. */
  crashes: number;
  /** Membership changes that completed. */
  membershipChanges: number;
  /** Highest term reached. */
  maxTerm: number;
}

/** A broken property, with what is needed to replay it. */
export interface SimulationFailure {
  /** The property, e.g. "Election Safety" or "Linearizability". */
  check: string;
  /** What was observed. */
  message: string;
  /** Virtual time of the failure. */
  time: number;
  /** The last events before the failure, when tracing. */
  trace: string[];
}

/** The outcome of {@linkcode simulate}. */
export interface SimulationResult {
  /** The seed of the run. */
  seed: number;
  /** The first broken property, or null. */
  failure: SimulationFailure | null;
  /** Counters. */
  stats: SimulationStats;
  /** How to replay this run. */
  replay: string;
}

// ------------------------------------------------------ linearizability

/** One operation of a client history, as the linearizability check sees it. */
export interface HistoryOperation {
  /** Partition of the history; operations of different keys commute. */
  key: string;
  /** The model's input. */
  input: unknown;
  /** The observed output; ignored while `pending`. */
  output: unknown;
  /** When the call started (any increasing clock). */
  call: number;
  /** When it returned; ignored while `pending`. */
  ret: number;
  /** The outcome is unknown: the operation may take effect or not. */
  pending: boolean;
}

/** The verdict of {@linkcode checkLinearizable}. */
export interface LinearizabilityResult {
  /** True if linearizable, false if not, null if the search gave up. */
  ok: boolean | null;
  /** The key whose history failed, when one did. */
  key?: string;
}

/**
 * Checks that a history is linearizable with respect to `model`, one key at
 * a time, with the Wing–Gong–Lowe search memoised on (linearized set,
 * state). Pending operations may take effect at any point after their call,
 * or never.
 *
 * @param history The operations, in any order.
 * @param model The sequential specification.
 * @param budget Search steps per key before giving up.
 * @returns The verdict.
 *
 * @example A stale read is caught
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { checkLinearizable } from "./testing.ts";
 *
 * const register = {
 *   init: () => 0,
 *   step: (state: number, input: unknown): [number, unknown] =>
 *     typeof input === "number" ? [input, null] : [state, state],
 * };
 * const history = [
 *   { key: "x", input: 1, output: null, call: 0, ret: 1, pending: false },
 *   { key: "x", input: "get", output: 0, call: 2, ret: 3, pending: false },
 * ];
 * equal(checkLinearizable(history, register).ok, false);
 * ```
 */
export function checkLinearizable<S>(
  history: readonly HistoryOperation[],
  model: Model<S>,
  budget = 2_000_000,
): LinearizabilityResult {
  const byKey = new Map<string, HistoryOperation[]>();
  for (const operation of history) {
    const list = byKey.get(operation.key) ?? [];
    list.push(operation);
    byKey.set(operation.key, list);
  }
  let gaveUp = false;
  for (const [key, operations] of [...byKey].sort(byFirst)) {
    const ok = searchKey(operations, model, budget);
    if (ok === false) return { ok: false, key };
    if (ok === null) gaveUp = true;
  }
  return { ok: gaveUp ? null : true };
}

function byFirst<T>(a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

interface Node {
  operation: number;
  isCall: boolean;
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

/** Builds the doubly linked list of call and return events, by time. */
function eventList(operations: HistoryOperation[]): Node {
  const events: { time: number; node: Node }[] = [];
  operations.forEach((operation, index) => {
    const call: Node = {
      operation: index,
      isCall: true,
      match: null,
      prev: null,
      next: null,
    };
    events.push({ time: operation.call, node: call });
    if (operation.pending) return;
    const ret: Node = { ...call, isCall: false };
    call.match = ret;
    events.push({ time: operation.ret, node: ret });
  });
  // Calls sort before returns at the same time: concurrent, not ordered.
  events.sort((a, b) =>
    a.time - b.time || Number(a.node.isCall ? 0 : 1) -
      Number(b.node.isCall ? 0 : 1)
  );
  const head: Node = {
    operation: -1,
    isCall: false,
    match: null,
    prev: null,
    next: null,
  };
  let last = head;
  for (const { node } of events) {
    node.prev = last;
    last.next = node;
    last = node;
  }
  return head;
}

function lift(node: Node): void {
  node.prev!.next = node.next;
  if (node.next) node.next.prev = node.prev;
  const match = node.match;
  if (match) {
    match.prev!.next = match.next;
    if (match.next) match.next.prev = match.prev;
  }
}

function unlift(node: Node): void {
  const match = node.match;
  if (match) {
    match.prev!.next = match;
    if (match.next) match.next.prev = match;
  }
  node.prev!.next = node;
  if (node.next) node.next.prev = node;
}

/** Wing & Gong's search with Lowe's memo; null when over budget. */
function searchKey<S>(
  operations: HistoryOperation[],
  model: Model<S>,
  budget: number,
): boolean | null {
  const head = eventList(operations);
  const linearized = new Uint32Array(Math.ceil(operations.length / 32) + 1);
  const seen = new Set<string>();
  const stack: { node: Node; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  for (let steps = 0; steps < budget; steps++) {
    if (entry === null) return true;
    if (!entry.isCall) {
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized[top.node.operation >> 5]! &= ~(1 << (top.node.operation & 31));
      unlift(top.node);
      entry = top.node.next;
      continue;
    }
    const operation = operations[entry.operation]!;
    const [after, output] = model.step(state, operation.input);
    if (operation.pending || sameJson(output, operation.output)) {
      const bit = 1 << (entry.operation & 31);
      linearized[entry.operation >> 5]! |= bit;
      const key = `${linearized.join(",")}|${JSON.stringify(after)}`;
      if (!seen.has(key)) {
        seen.add(key);
        stack.push({ node: entry, state });
        state = after;
        lift(entry);
        entry = head.next;
        continue;
      }
      linearized[entry.operation >> 5]! &= ~bit;
    }
    entry = entry.next;
  }
  return null;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// --------------------------------------------------- storage and network

/** What a node has durably stored, mirrored from acknowledged saves. */
interface DurableState {
  hardState: HardState;
  terms: number[];
  votes: Map<number, NodeId>;
}

/**
 * Storage of one node incarnation: passes through to the node's
 * {@linkcode MemoryStorage} until the incarnation crashes, then goes silent
 * so that a discarded server can never write into its successor's storage.
 */
class FencedStorage implements Storage {
  dead = false;
  readonly #storage: MemoryStorage;
  readonly #onDurable: (batch: SaveBatch) => void;

  constructor(storage: MemoryStorage, onDurable: (batch: SaveBatch) => void) {
    this.#storage = storage;
    this.#onDurable = onDurable;
  }

  open(): Promise<StoredState> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.open();
  }

  save(batch: SaveBatch): Promise<void> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.save(batch).then(() => {
      if (!this.dead) this.#onDurable(batch);
    });
  }

  stats(): StorageStats {
    return this.#storage.stats();
  }

  close(): Promise<void> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.close();
  }
}

/** A transport that reports what it sends and receives to a trace. */
class TracedTransport implements Transport {
  readonly #inner: Transport;
  readonly #trace: (line: string) => void;

  constructor(inner: Transport, trace: (line: string) => void) {
    this.#inner = inner;
    this.#trace = trace;
  }

  start(self: NodeId, handlers: TransportHandlers): Promise<void> {
    const receive = (messages: Message[]) => {
      for (const message of messages) this.#trace(`recv ${show(message)}`);
      handlers.receive(messages);
    };
    return this.#inner.start(self, { ...handlers, receive });
  }

  setPeers(members: Member[]): void {
    this.#inner.setPeers(members);
  }

  send(messages: Message[]): void {
    for (const message of messages) this.#trace(`send ${show(message)}`);
    this.#inner.send(messages);
  }

  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    this.#trace(`forward ${request.kind} to ${to}`);
    return this.#inner.forward(to, request, timeoutMs);
  }

  stop(): Promise<void> {
    return this.#inner.stop();
  }
}

function show(message: Message): string {
  const head = `${message.type} ${message.from}>${message.to} t${message.term}`;
  switch (message.type) {
    case "vote":
      return `${head} pre=${message.pre} last=${message.lastIndex}/` +
        `${message.lastTerm}`;
    case "voteResponse":
      return `${head} pre=${message.pre} granted=${message.granted}`;
    case "append":
      return `${head} prev=${message.prevIndex}/${message.prevTerm} ` +
        `n=${message.entries.length} commit=${message.commit}`;
    case "appendResponse":
      return `${head} ok=${message.success} match=${message.matchIndex} ` +
        `rejected=${message.rejectedIndex}`;
    case "heartbeat":
      return `${head} commit=${message.commit} round=${message.round}`;
    case "heartbeatResponse":
      return `${head} round=${message.round}`;
  }
}

// ------------------------------------------------------------ node slots

/** A running (or starting) server and everything that dies with it. */
interface Incarnation<C> {
  server: Server<C>;
  clock: NodeClock;
  storage: FencedStorage;
  transport: Transport;
  running: boolean;
  stopped: boolean;
  lastTerm: number;
  lastCommit: number;
  lastApplied: number;
  verified: number[];
  checks: number;
}

/** A node id with its durable storage, across incarnations. */
interface Slot<C> {
  id: NodeId;
  join: boolean;
  config: Config;
  storage: MemoryStorage;
  durable: DurableState;
  diskSlowMs: number;
  incarnation: Incarnation<C> | null;
  decommissioned: boolean;
}

function nodeUrl(id: NodeId): string {
  return `http://node-${id}.sim`;
}

function member(id: NodeId): HttpNode {
  return new HttpNode(id, nodeUrl(id));
}

// ---------------------------------------------------------------- checks

interface SeenEntry {
  kind: EntryKind;
  data: string;
  prevTerm: number;
}

interface VoterSets {
  index: number;
  voters: NodeId[];
  old: NodeId[];
}

type Fail = (check: string, message: string) => void;

/** Checks of a node between two scans of its whole log. */
const fullLogCheckEvery = 32;

/** The safety properties, checked against what every node holds. */
class Checker<C> {
  readonly #slots: Map<NodeId, Slot<C>>;
  readonly #fail: Fail;
  readonly #fingerprint: (context: C) => string;
  readonly #leaders = new Map<number, NodeId>();
  readonly #seen = new Map<string, SeenEntry>();
  readonly #committed: number[] = [0];
  readonly #commitTerms: number[] = [0];
  readonly #configs: VoterSets[] = [];
  readonly #seenConfigs: VoterSets[] = [];
  readonly #fingerprints = new Map<number, string>();
  maxTerm = 0;

  constructor(
    slots: Map<NodeId, Slot<C>>,
    fail: Fail,
    fingerprint: (context: C) => string,
  ) {
    this.#slots = slots;
    this.#fail = fail;
    this.#fingerprint = fingerprint;
  }

  /** Election Safety and Leader Completeness, when a node wins. */
  onLeader(id: NodeId, term: number, core: RaftCore): void {
    this.#electionSafety(id, term);
    for (let index = 1; index < this.#committed.length; index++) {
      if (this.#commitTerms[index]! >= term) continue;
      if (core.termAt(index) === this.#committed[index]) continue;
      this.#fail(
        "Leader Completeness",
        `Node ${id} became leader of term ${term} without committed entry ` +
          `${index} (term ${this.#committed[index]}): it has term ` +
          `${core.termAt(index)}`,
      );
      return;
    }
  }

  #electionSafety(id: NodeId, term: number): void {
    const known = this.#leaders.get(term);
    if (known === undefined) this.#leaders.set(term, id);
    else if (known !== id) {
      this.#fail(
        "Election Safety",
        `Two leaders in term ${term}: nodes ${known} and ${id}`,
      );
    }
  }

  /** Durable terms never decrease; one durable vote per term. */
  onDurable(slot: Slot<C>, batch: SaveBatch): void {
    const durable = slot.durable;
    if (batch.entries && batch.entries.length > 0) {
      const first = batch.entries[0]!.index;
      durable.terms.length = first - 1;
      for (const entry of batch.entries) durable.terms.push(entry.term);
    }
    const hardState = batch.hardState;
    if (!hardState) return;
    if (hardState.term < durable.hardState.term) {
      this.#fail(
        "Durable term",
        `Node ${slot.id} stored term ${hardState.term} after term ` +
          `${durable.hardState.term}`,
      );
    }
    const vote = durable.votes.get(hardState.term);
    if (hardState.vote !== 0 && vote !== undefined && vote !== hardState.vote) {
      this.#fail(
        "Durable vote",
        `Node ${slot.id} stored a vote for ${hardState.vote} in term ` +
          `${hardState.term} after voting for ${vote}`,
      );
    }
    if (hardState.vote !== 0) durable.votes.set(hardState.term, hardState.vote);
    durable.hardState = { ...hardState };
  }

  /** Every per-node property, after an event. */
  checkNode(slot: Slot<C>, incarnation: Incarnation<C>): boolean {
    const core = incarnation.server[inspectCore]();
    if (!core) return false;
    this.#terms(slot, incarnation, core);
    if (core.role === "leader") this.#electionSafety(slot.id, core.term);
    this.#logMatching(slot.id, incarnation, core);
    this.#commits(slot.id, incarnation, core);
    return this.#applied(slot.id, incarnation, core);
  }

  #terms(slot: Slot<C>, incarnation: Incarnation<C>, core: RaftCore): void {
    const term = core.term;
    if (term < incarnation.lastTerm) {
      this.#fail(
        "Monotonic term",
        `Node ${slot.id} went from term ${incarnation.lastTerm} to ${term}`,
      );
    }
    if (term < slot.durable.hardState.term) {
      this.#fail(
        "Monotonic term",
        `Node ${slot.id} runs in term ${term} below its durable term ` +
          `${slot.durable.hardState.term}`,
      );
    }
    incarnation.lastTerm = term;
    this.maxTerm = Math.max(this.maxTerm, term);
  }

  /**
   * Log Matching, incrementally: every (index, term) ever seen on any node
   * names one entry with one predecessor term, so two logs that share an
   * entry share the whole prefix before it.
   */
  #logMatching(id: NodeId, incarnation: Incarnation<C>, core: RaftCore): void {
    const verified = incarnation.verified;
    // A log rewritten in place keeps its last term: rescan it all now and
    // then, not only the suffix whose terms changed.
    if (++incarnation.checks % fullLogCheckEvery === 0) verified.length = 1;
    const last = core.lastIndex;
    let from = Math.min(verified.length - 1, last);
    while (from > 0 && core.termAt(from) !== verified[from]) from--;
    verified.length = from + 1;
    if (from === last) return;
    let prevTerm = core.termAt(from) ?? 0;
    for (const entry of core.entries(from + 1, last)) {
      const key = `${entry.index}/${entry.term}`;
      const seen = this.#seen.get(key);
      if (!seen) {
        this.#seen.set(key, { kind: entry.kind, data: entry.data, prevTerm });
        if (entry.kind === EntryKind.Config) {
          this.#seenConfigs.push(voterSets(entry));
        }
      } else if (
        seen.kind !== entry.kind || seen.data !== entry.data ||
        seen.prevTerm !== prevTerm
      ) {
        this.#fail(
          "Log Matching",
          `Node ${id} holds entry ${key} that differs from another log's ` +
            `(${describeEntry(entry, prevTerm)} vs ` +
            `${
              describeEntry(
                { ...seen, index: entry.index, term: entry.term },
                seen.prevTerm,
              )
            })`,
        );
        return;
      }
      verified.push(entry.term);
      prevTerm = entry.term;
    }
  }

  #commits(id: NodeId, incarnation: Incarnation<C>, core: RaftCore): void {
    const commit = core.commit;
    if (commit < incarnation.lastCommit || commit > core.lastIndex) {
      this.#fail(
        "Commit index",
        `Node ${id} has commit ${commit} (was ${incarnation.lastCommit}, ` +
          `last index ${core.lastIndex})`,
      );
      return;
    }
    if (commit === incarnation.lastCommit) return;
    const entries = core.entries(incarnation.lastCommit + 1, commit);
    incarnation.lastCommit = commit;
    for (const entry of entries) this.#recordCommitted(id, entry, core.term);
    this.#quorumHolds(id, core, commit);
  }

  /** State Machine Safety at the log level: one entry per index. */
  #recordCommitted(id: NodeId, entry: Entry, term: number): void {
    const known = this.#committed[entry.index];
    if (known !== undefined && known !== entry.term) {
      this.#fail(
        "State Machine Safety",
        `Node ${id} committed entry ${entry.index} of term ${entry.term}; ` +
          `another node committed term ${known} there`,
      );
      return;
    }
    if (known !== undefined) return;
    this.#committed[entry.index] = entry.term;
    this.#commitTerms[entry.index] = term;
    if (entry.kind === EntryKind.Config) this.#configs.push(voterSets(entry));
  }

  /**
   * The entry at `commit` is durable on a quorum of the configuration in
   * force there, or of a later one: a leader counts with the latest
   * configuration in its log, which may be past the entry.
   */
  #quorumHolds(id: NodeId, core: RaftCore, commit: number): void {
    const term = core.termAt(commit)!;
    if (commit === 1 && term === 1) return; // the founding configuration
    const inForce = this.#configs.findLast((one) => one.index <= commit);
    const candidates = this.#seenConfigs.filter((one) => one.index > commit);
    if (inForce) candidates.push(inForce);
    const holds = (ids: NodeId[]) =>
      ids.filter((one) =>
            this.#slots.get(one)?.durable.terms[commit - 1] === term
          ).length * 2 > ids.length;
    const ok = candidates.some((config) =>
      holds(config.voters) && (config.old.length === 0 || holds(config.old))
    );
    if (ok) return;
    this.#fail(
      "Commit quorum",
      `Node ${id} commits ${commit} (term ${term}) but no quorum stores it ` +
        `durably; stored by: ${
          this.#holders(commit, term).join(", ") || "none"
        }`,
    );
  }

  #holders(index: number, term: number): NodeId[] {
    return [...this.#slots.values()]
      .filter((slot) => slot.durable.terms[index - 1] === term)
      .map((slot) => slot.id);
  }

  /** Applied entries are committed, and equal applied prefixes agree. */
  #applied(id: NodeId, incarnation: Incarnation<C>, core: RaftCore): boolean {
    const applied = incarnation.server.status().appliedIndex;
    if (applied === incarnation.lastApplied) return false;
    if (applied > core.commit || applied < incarnation.lastApplied) {
      this.#fail(
        "Applied index",
        `Node ${id} applied ${applied} (was ${incarnation.lastApplied}) ` +
          `with commit ${core.commit}`,
      );
      return false;
    }
    incarnation.lastApplied = applied;
    const fingerprint = this.#fingerprint(incarnation.server.context);
    const known = this.#fingerprints.get(applied);
    if (known === undefined) this.#fingerprints.set(applied, fingerprint);
    else if (known !== fingerprint) {
      this.#fail(
        "State Machine Safety",
        `Node ${id} applied ${applied} entries and reached a state that ` +
          `differs from another node's after as many entries`,
      );
    }
    return true;
  }
}

function voterSets(entry: Entry): VoterSets {
  const data = JSON.parse(entry.data) as { members: Member[]; old?: Member[] };
  return {
    index: entry.index,
    voters: data.members.map((one) => one.id),
    old: (data.old ?? []).map((one) => one.id),
  };
}

function describeEntry(
  entry: { index: number; term: number; kind: EntryKind; data: string },
  prevTerm: number,
): string {
  const data = entry.data.length > 40
    ? `${entry.data.slice(0, 40)}…`
    : entry.data;
  return `kind ${entry.kind} data ${data} after term ${prevTerm}`;
}

// ------------------------------------------------------------ simulation

const timing = {
  tickMs: 10,
  electionTimeoutMs: 150,
  heartbeatIntervalMs: 50,
  execTimeoutMs: 1000,
  catchUpTimeoutMs: 1000,
};
/** Microtask turns after each event: the server's async steps settle. */
const microtaskTurnsPerEvent = 40;
/** A leader must be elected this long after the network heals. */
const electionBoundMs = 2000;
/** Operations invoked this long after healing must succeed. */
const livenessGraceMs = 1500;
/** Time for every operation to settle and every member to converge. */
const drainBoundMs = 4000;
/** Nodes a run may create beyond the founders. */
const extraNodesMax = 6;
/** Events per run before the simulator reports a runaway. */
const eventsMax = 3_000_000;

interface ClientRecord<C> {
  client: number;
  operation: Operation<C>;
  call: number;
  ret: number;
  invokedAt: number;
  output: unknown;
  state: "running" | "ok" | "unknown" | "failed";
  incarnation: Incarnation<C>;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** One seeded run of a cluster; see {@linkcode simulate}. */
class Simulation<C, S> {
  readonly #options: SimulationOptions<C, S>;
  readonly #faults: ReadonlySet<Fault>;
  readonly #time = new VirtualTime();
  readonly #random: {
    network: () => number;
    nemesis: () => number;
    clients: () => number;
    nodes: () => number;
    disk: () => number;
  };
  readonly #network: MemoryNetwork;
  readonly #slots = new Map<NodeId, Slot<C>>();
  readonly #checker: Checker<C>;
  readonly #records: ClientRecord<C>[] = [];
  readonly #trace: string[] = [];
  readonly #faultMs: number;
  readonly #livenessMs: number;
  #failure: SimulationFailure | null = null;
  #phase: "faults" | "healed" | "draining" = "faults";
  #healedAt = Infinity;
  #leaderAfterHeal = false;
  #historyClock = 0;
  #nextId: number;
  #membershipBusyUntil = 0;
  /** Replication limits, drawn per run: small ones split batches. */
  readonly #tuning: { entriesPerAppendMax: number; inflightMax: number };
  /** Mean virtual milliseconds between faults, drawn per run. */
  readonly #faultEveryMs: number;
  #stats: SimulationStats = {
    events: 0,
    virtualMs: 0,
    completed: 0,
    unknown: 0,
    failed: 0,
    crashes: 0,
    membershipChanges: 0,
    maxTerm: 0,
  };

  constructor(options: SimulationOptions<C, S>) {
    this.#options = options;
    this.#faults = new Set(options.faults ?? allFaults);
    this.#faultMs = options.faultMs ?? 3000;
    this.#livenessMs = options.livenessMs ?? 3000;
    const root = seededRandom(options.seed);
    this.#random = {
      network: forkRandom(root),
      nemesis: forkRandom(root),
      clients: forkRandom(root),
      nodes: forkRandom(root),
      disk: forkRandom(root),
    };
    this.#network = new MemoryNetwork({
      schedule: (run, delayMs) => this.#time.at(this.#time.now + delayMs, run),
      random: this.#random.network,
    });
    this.#checker = new Checker(
      this.#slots,
      (check, message) => this.#fail(check, message),
      options.fingerprint ?? ((context) => JSON.stringify(context)),
    );
    this.#nextId = (options.nodes ?? 3) + 1;
    const nemesis = this.#random.nemesis;
    this.#tuning = {
      entriesPerAppendMax: pick(nemesis, [1, 2, 8, 512])!,
      inflightMax: pick(nemesis, [1, 4, 32])!,
    };
    this.#faultEveryMs = pick(nemesis, [40, 120, 300])!;
  }

  async run(): Promise<SimulationResult> {
    this.#found();
    this.#startClients();
    this.#time.at(this.#randomDelay(), () => this.#nemesis());
    this.#time.at(this.#faultMs, () => this.#heal());
    const end = this.#faultMs + this.#livenessMs;
    await this.#runUntil(() => false, end);
    this.#phase = "draining";
    await this.#runUntil(() => this.#settled(), end + drainBoundMs);
    this.#finalChecks();
    if (!this.#failure) this.#checkHistory();
    this.#stats.virtualMs = this.#time.now;
    this.#stats.maxTerm = this.#checker.maxTerm;
    return {
      seed: this.#options.seed,
      failure: this.#failure,
      stats: this.#stats,
      replay: this.#replay(),
    };
  }

  #replay(): string {
    const template = this.#options.replay ??
      "simulate({ ...options, seed: {seed}, trace: 200 })";
    return template.replaceAll("{seed}", String(this.#options.seed));
  }

  // ------------------------------------------------------------ the loop

  async #runUntil(done: () => boolean, limit: number): Promise<void> {
    while (!this.#failure && !done()) {
      const event = this.#time.next(limit);
      if (!event) {
        this.#time.now = Math.max(this.#time.now, limit);
        return;
      }
      this.#time.now = event.time;
      if (++this.#stats.events > eventsMax) {
        this.#fail("Simulator", `More than ${eventsMax} events`);
        return;
      }
      try {
        event.run();
      } catch (error) {
        this.#fail("Simulator", `An event threw: ${text(error)}`);
        return;
      }
      for (let turn = 0; turn < microtaskTurnsPerEvent; turn++) await null;
      this.#check();
    }
  }

  #check(): void {
    let applied = false;
    for (const slot of this.#slots.values()) {
      const incarnation = slot.incarnation;
      if (!incarnation || incarnation.stopped) continue;
      if (this.#checker.checkNode(slot, incarnation)) applied = true;
      if (this.#failure) return;
    }
    if (applied) this.#userInvariant();
    if (this.#phase !== "faults" && !this.#leaderAfterHeal) this.#liveness();
  }

  #userInvariant(): void {
    const invariant = this.#options.invariant;
    if (!invariant) return;
    const contexts = new Map<NodeId, C>();
    for (const slot of this.#slots.values()) {
      const incarnation = slot.incarnation;
      if (incarnation?.running) {
        contexts.set(slot.id, incarnation.server.context);
      }
    }
    try {
      invariant(contexts);
    } catch (error) {
      this.#fail("Invariant", text(error));
    }
  }

  #fail(check: string, message: string): void {
    if (this.#failure) return;
    this.#traceLine(`FAILURE ${check}: ${message}`);
    this.#failure = {
      check,
      message,
      time: this.#time.now,
      trace: [...this.#trace],
    };
  }

  #traceLine(line: string): void {
    const keep = this.#options.trace ?? 0;
    if (keep <= 0) return;
    this.#trace.push(`${this.#time.now.toFixed(2).padStart(9)} ${line}`);
    if (this.#trace.length > keep) this.#trace.shift();
  }

  #randomDelay(): number {
    return this.#faultEveryMs * 2 * this.#random.nemesis();
  }

  // --------------------------------------------------------------- nodes

  #found(): void {
    const founders = Array.from(
      { length: this.#options.nodes ?? 3 },
      (_, i) => member(i + 1),
    );
    const config = new Config(...founders);
    for (const node of founders) this.#addSlot(node.id, false, config);
  }

  #addSlot(id: NodeId, join: boolean, config: Config): Slot<C> {
    const slot: Slot<C> = {
      id,
      join,
      config,
      storage: new MemoryStorage({ sync: () => this.#sync(slot) }),
      durable: {
        hardState: { term: 0, vote: 0, commit: 0 },
        terms: [],
        votes: new Map(),
      },
      diskSlowMs: 0,
      incarnation: null,
      decommissioned: false,
    };
    this.#slots.set(id, slot);
    this.#startNode(slot);
    return slot;
  }

  /** An fsync: always a separate event, later on a slow disk. */
  #sync(slot: Slot<C>): Promise<void> {
    const delay = slot.diskSlowMs * this.#random.disk();
    return new Promise((resolve) => {
      this.#time.at(this.#time.now + delay, resolve);
    });
  }

  #startNode(slot: Slot<C>): void {
    const holder: { incarnation?: Incarnation<C> } = {};
    const clock = new NodeClock(this.#time);
    const storage = new FencedStorage(
      slot.storage,
      (batch) => this.#checker.onDurable(slot, batch),
    );
    let transport: Transport = this.#network.transport(slot.id);
    if ((this.#options.trace ?? 0) > 0) {
      transport = new TracedTransport(
        transport,
        (line) => this.#traceLine(`${slot.id}: ${line}`),
      );
    }
    const server = new Server(
      slot.id,
      this.#options.context(),
      slot.config,
      "",
      {
        ...timing,
        ...this.#tuning,
        storage,
        transport,
        clock,
        join: slot.join,
        random: forkRandom(this.#random.nodes),
        logger: this.#logger(slot, holder),
      },
    );
    for (const command of this.#options.commands) {
      server.registerCommand(command);
    }
    const incarnation: Incarnation<C> = {
      server,
      clock,
      storage,
      transport,
      running: false,
      stopped: false,
      lastTerm: 0,
      lastCommit: 0,
      lastApplied: 0,
      verified: [0],
      checks: 0,
    };
    holder.incarnation = incarnation;
    slot.incarnation = incarnation;
    this.#traceLine(`${slot.id}: start`);
    server.start({ recover: true }).then(
      () => incarnation.running = !incarnation.stopped && !clock.dead,
      (error) => {
        if (clock.dead) return;
        this.#fail("Server", `Node ${slot.id} failed to start: ${text(error)}`);
      },
    );
  }

  #logger(slot: Slot<C>, holder: { incarnation?: Incarnation<C> }): Logger {
    const log = (level: string, message: string, fields?: LogFields) => {
      const incarnation = holder.incarnation;
      if (!incarnation || slot.incarnation !== incarnation) return;
      if (level !== "debug") {
        this.#traceLine(`${slot.id}: ${message} ${JSON.stringify(fields)}`);
      }
      if (message === "became leader") {
        const core = incarnation.server[inspectCore]();
        const term = Number(fields?.term);
        if (core) this.#checker.onLeader(slot.id, term, core);
        this.#maybeDethrone(slot);
      }
      if (level === "error") {
        this.#fail("Server", `Node ${slot.id}: ${message}: ${fields?.error}`);
      }
    };
    return {
      debug: (message, fields) => log("debug", message, fields),
      info: (message, fields) => log("info", message, fields),
      warn: (message, fields) => log("warn", message, fields),
      error: (message, fields) => log("error", message, fields),
    };
  }

  /** Power cut: timers, network and unsynced writes are gone. */
  #crash(slot: Slot<C>): void {
    const incarnation = slot.incarnation;
    if (!incarnation) return;
    this.#traceLine(`${slot.id}: CRASH`);
    incarnation.clock.dead = true;
    incarnation.storage.dead = true;
    incarnation.stopped = true;
    void incarnation.transport.stop();
    slot.storage.crash();
    slot.incarnation = null;
    this.#stats.crashes++;
    this.#abandon(incarnation);
  }

  #restart(slot: Slot<C>): void {
    if (slot.incarnation || slot.decommissioned || this.#failure) return;
    this.#startNode(slot);
  }

  /** A clean stop of a node that left the cluster. */
  #decommission(id: NodeId): void {
    const slot = this.#slots.get(id);
    const incarnation = slot?.incarnation;
    if (!slot || !incarnation || this.#phase !== "faults") return;
    this.#traceLine(`${id}: decommission`);
    incarnation.stopped = true;
    incarnation.running = false;
    slot.decommissioned = true;
    slot.incarnation = null;
    this.#abandon(incarnation);
    incarnation.server.stop().catch((error) => {
      this.#fail("Server", `Node ${id} failed to stop: ${text(error)}`);
    });
  }

  #running(): Slot<C>[] {
    return [...this.#slots.values()].filter((slot) =>
      slot.incarnation?.running
    );
  }

  #leader(): Slot<C> | undefined {
    let best: Slot<C> | undefined;
    for (const slot of this.#running()) {
      const core = slot.incarnation!.server[inspectCore]();
      if (core?.role !== "leader") continue;
      const bestTerm = best?.incarnation?.server[inspectCore]()?.term ?? -1;
      if (core.term > bestTerm) best = slot;
    }
    return best;
  }

  // ------------------------------------------------------------- nemesis

  #nemesis(): void {
    if (this.#phase !== "faults" || this.#failure) return;
    const fault = pick(this.#random.nemesis, [...this.#faults]);
    if (fault === "network") this.#shakeNetwork();
    if (fault === "partition") this.#partition();
    if (fault === "crash") this.#crashSome();
    if (fault === "disk") this.#slowDisk();
    if (fault === "membership") this.#changeMembership();
    this.#time.at(this.#time.now + this.#randomDelay(), () => this.#nemesis());
  }

  #shakeNetwork(): void {
    const random = this.#random.nemesis;
    const drop = pick(random, [0, 0, 0.02, 0.1, 0.3])!;
    const duplicate = pick(random, [0, 0, 0.05, 0.2])!;
    const delayMax = pick(random, [1, 5, 20, 60])!;
    this.#traceLine(
      `NET drop=${drop} duplicate=${duplicate} delay<=${delayMax}`,
    );
    this.#network.drop(drop);
    this.#network.duplicate(duplicate);
    this.#network.delay(0, delayMax);
  }

  #partition(): void {
    const random = this.#random.nemesis;
    const ids = this.#liveIds();
    if (ids.length < 2) return;
    const kind = pick(random, ["split", "oneWay", "isolate", "leader"])!;
    if (kind === "isolate" || kind === "leader") {
      const id = kind === "leader"
        ? this.#leader()?.id ?? pick(random, ids)!
        : pick(random, ids)!;
      this.#traceLine(`PARTITION isolate ${id}`);
      this.#network.isolate(id);
    } else {
      const shuffled = shuffle(random, ids);
      const cut = 1 + randomInt(random, ids.length - 1);
      const [a, b] = [shuffled.slice(0, cut), shuffled.slice(cut)];
      this.#traceLine(`PARTITION ${kind} ${a} | ${b}`);
      this.#network.partition(a, b, { oneWay: kind === "oneWay" });
    }
    const healAt = this.#time.now + 100 + random() * 900;
    this.#time.at(healAt, () => {
      this.#traceLine("PARTITION heal");
      this.#network.heal();
    });
  }

  #liveIds(): NodeId[] {
    return [...this.#slots.values()]
      .filter((slot) => slot.incarnation)
      .map((slot) => slot.id);
  }

  #crashSome(): void {
    const random = this.#random.nemesis;
    const candidates = [...this.#slots.values()].filter((slot) =>
      slot.incarnation
    );
    const leader = this.#leader();
    const slot = leader && random() < 0.3 ? leader : pick(random, candidates);
    if (slot) this.#crashAndRestart(slot);
  }

  #crashAndRestart(slot: Slot<C>): void {
    const random = this.#random.nemesis;
    this.#crash(slot);
    const downMs = random() < 0.2 ? random() * 10 : 10 + random() * 1000;
    this.#time.at(this.#time.now + downMs, () => this.#restart(slot));
  }

  /**
   * Sometimes crashes a new leader during its takeover, before its first
   * entries spread: the schedule behind Figure 8 of the Raft paper.
   */
  #maybeDethrone(slot: Slot<C>): void {
    const random = this.#random.nemesis;
    if (this.#phase !== "faults" || !this.#faults.has("crash")) return;
    if (random() >= 0.2) return;
    const incarnation = slot.incarnation;
    if (random() < 0.5) {
      // Cut off before its first append leaves: its entries stay its own.
      this.#traceLine(`PARTITION isolate new leader ${slot.id}`);
      this.#network.isolate(slot.id);
      this.#time.at(this.#time.now + 200 + random() * 600, () => {
        this.#traceLine("PARTITION heal");
        this.#network.heal();
      });
    }
    this.#time.at(this.#time.now + random() * 30, () => {
      if (this.#phase !== "faults") return;
      if (slot.incarnation === incarnation) this.#crashAndRestart(slot);
    });
  }

  #slowDisk(): void {
    const random = this.#random.nemesis;
    const slot = pick(random, [...this.#slots.values()]);
    if (!slot) return;
    slot.diskSlowMs = pick(random, [0, 2, 10, 40])!;
    this.#traceLine(`${slot.id}: DISK slow<=${slot.diskSlowMs}`);
  }

  /** 3→5, 5→3 or a replacement, possibly removing the leader. */
  #changeMembership(): void {
    const random = this.#random.nemesis;
    const founders = this.#options.nodes ?? 3;
    if (this.#time.now < this.#membershipBusyUntil) return;
    if (this.#nextId > founders + extraNodesMax) return;
    const leader = this.#leader();
    if (!leader) return;
    const status = leader.incarnation!.server.status();
    if (status.oldMembers.length > 0) return;
    const voters = status.members.map((one) => one.id);
    const grow = voters.length <= 3 && random() < 0.5;
    const shrink = voters.length >= 5 && random() < 0.5;
    const removed = shrink ? 2 : grow ? 0 : 1;
    const added = grow ? 2 : shrink ? 0 : 1;
    const leaving = new Set<NodeId>();
    if (removed > 0 && random() < 0.5) leaving.add(leader.id);
    for (const id of shuffle(random, voters)) {
      if (leaving.size < removed) leaving.add(id);
    }
    const target = voters.filter((id) => !leaving.has(id));
    for (let count = 0; count < added; count++) {
      target.push(this.#addJoiner().id);
    }
    this.#proposeMembership(voters, target, [...leaving]);
  }

  #addJoiner(): Slot<C> {
    const id = this.#nextId++;
    const everyone = [...this.#slots.keys(), id].map(member);
    return this.#addSlot(id, true, new Config(...everyone));
  }

  #proposeMembership(voters: NodeId[], target: NodeId[], leaving: NodeId[]) {
    const via = pick(
      this.#random.nemesis,
      voters.filter((id) => this.#slots.get(id)?.incarnation?.running),
    );
    if (via === undefined) return;
    const server = this.#slots.get(via)!.incarnation!.server;
    this.#membershipBusyUntil = this.#time.now + 5000;
    this.#traceLine(`MEMBERSHIP via ${via}: ${voters} -> ${target}`);
    server.setConfig(...target.map(member)).then(
      () => {
        this.#traceLine(`MEMBERSHIP done: ${target}`);
        this.#stats.membershipChanges++;
        this.#membershipBusyUntil = 0;
        const stopAt = this.#time.now + 100 + this.#random.nemesis() * 400;
        for (const id of leaving) {
          this.#time.at(stopAt, () => this.#decommission(id));
        }
      },
      (error) => {
        this.#traceLine(`MEMBERSHIP failed: ${text(error)}`);
        this.#membershipBusyUntil = 0;
        const expected = [
          "ConfigChangeError",
          "NoLeaderError",
          "NotCommittedError",
          "StoppedError",
          "TimedOutError",
        ];
        if (!expected.includes(errorName(error))) {
          this.#fail("Membership", `setConfig failed: ${text(error)}`);
        }
      },
    );
  }

  /** The faults stop: the network heals, disks speed up, nodes return. */
  #heal(): void {
    this.#phase = "healed";
    this.#healedAt = this.#time.now;
    this.#traceLine("HEAL everything");
    this.#network.heal();
    this.#network.drop(0);
    this.#network.duplicate(0);
    this.#network.delay(0, 2);
    for (const slot of this.#slots.values()) {
      slot.diskSlowMs = 0;
      this.#restart(slot);
    }
  }

  // ------------------------------------------------------------- clients

  #startClients(): void {
    const clients = this.#options.clients ?? 4;
    for (let client = 0; client < clients; client++) {
      this.#time.at(this.#random.clients() * 50, () => this.#invoke(client));
    }
  }

  #invoke(client: number): void {
    if (this.#phase === "draining" || this.#failure) return;
    const slot = pick(this.#random.clients, this.#clientTargets());
    if (!slot) {
      this.#time.at(this.#time.now + 20, () => this.#invoke(client));
      return;
    }
    const incarnation = slot.incarnation!;
    const operation = this.#options.workload.next(this.#random.clients, client);
    const record: ClientRecord<C> = {
      client,
      operation,
      call: ++this.#historyClock,
      ret: Infinity,
      invokedAt: this.#time.now,
      output: undefined,
      state: "running",
      incarnation,
    };
    this.#records.push(record);
    this.#traceLine(
      `client ${client} on ${slot.id}: ${operation.kind} ` +
        JSON.stringify(operation.input),
    );
    const server = incarnation.server;
    const promise = operation.kind === "exec"
      ? server.exec(operation.command)
      : server.read(operation.query);
    promise.then(
      (value) => this.#complete(record, { ok: true, value }),
      (error) => this.#complete(record, { ok: false, error }),
    );
  }

  /** Running members of the leader's configuration once healed. */
  #clientTargets(): Slot<C>[] {
    const running = this.#running();
    if (this.#phase === "faults") return running;
    const leader = this.#leader();
    if (!leader) return running;
    const members = new Set(
      leader.incarnation!.server.status().members.map((one) => one.id),
    );
    return running.filter((slot) => members.has(slot.id));
  }

  #complete(record: ClientRecord<C>, outcome: Outcome): void {
    if (record.state !== "running") return;
    record.ret = ++this.#historyClock;
    const state = this.#classify(record, outcome);
    this.#traceLine(
      `client ${record.client}: ${record.state} ` +
        (outcome.ok ? JSON.stringify(outcome.value) : text(outcome.error)),
    );
    const late = record.invokedAt >= this.#healedAt + livenessGraceMs;
    if (late && state !== "ok") {
      this.#fail(
        "Liveness",
        `An operation invoked ${livenessGraceMs} ms after healing did not ` +
          `succeed: ${outcome.ok ? "" : text(outcome.error)}`,
      );
    }
    this.#next(record.client);
  }

  #classify(
    record: ClientRecord<C>,
    outcome: Outcome,
  ): ClientRecord<C>["state"] {
    if (outcome.ok) {
      record.output = outcome.value;
      return record.state = "ok";
    }
    const name = errorName(outcome.error);
    const unknown = ["NoLeaderError", "StoppedError", "TimedOutError"];
    if (record.operation.kind === "read" || name === "NotCommittedError") {
      record.state = "failed";
    } else if (unknown.includes(name)) {
      record.state = "unknown";
    } else {
      // An error thrown by the command's `apply` is its output.
      record.state = "ok";
      record.output = { error: text(outcome.error) };
    }
    return record.state;
  }

  #next(client: number): void {
    const thinkMs = this.#random.clients() * 40;
    this.#time.at(this.#time.now + thinkMs, () => this.#invoke(client));
  }

  /** Operations of a node that is gone will never complete. */
  #abandon(incarnation: Incarnation<C>): void {
    for (const record of this.#records) {
      if (record.incarnation !== incarnation) continue;
      if (record.state !== "running") continue;
      record.state = record.operation.kind === "read" ? "failed" : "unknown";
      this.#traceLine(`client ${record.client}: abandoned`);
      this.#next(record.client);
    }
  }

  // ---------------------------------------------------- liveness, history

  /** After healing, some leader must win a quorum's allegiance in time. */
  #liveness(): void {
    const leader = this.#leader();
    if (leader && this.#followed(leader)) {
      this.#leaderAfterHeal = true;
      return;
    }
    if (this.#time.now > this.#healedAt + electionBoundMs) {
      this.#fail(
        "Liveness",
        `No leader within ${electionBoundMs} ms after the network healed`,
      );
    }
  }

  #followed(leader: Slot<C>): boolean {
    const core = leader.incarnation!.server[inspectCore]()!;
    const voters = core.membership.quorum.voters;
    const following = voters.filter((id) => {
      const other = this.#slots.get(id)?.incarnation;
      const otherCore = other?.running ? other.server[inspectCore]() : null;
      return otherCore?.term === core.term && otherCore.leader === leader.id;
    });
    return following.length * 2 > voters.length;
  }

  #settled(): boolean {
    if (this.#records.some((record) => record.state === "running")) {
      return false;
    }
    return this.#converged() !== null;
  }

  /** Every running member applied what the leader committed, or null. */
  #converged(): number | null {
    const leader = this.#leader();
    if (!leader) return null;
    const core = leader.incarnation!.server[inspectCore]()!;
    if (core.changeInProgress()) return null;
    for (const id of core.membership.quorum.voters) {
      const slot = this.#slots.get(id);
      if (!slot?.incarnation?.running) return null;
      const status = slot.incarnation.server.status();
      if (status.appliedIndex !== core.commit) return null;
      if (status.lastLogIndex !== core.lastIndex) return null;
    }
    return core.commit;
  }

  #finalChecks(): void {
    if (this.#failure) return;
    const running = this.#records.filter((record) =>
      record.state === "running"
    );
    if (running.length > 0) {
      this.#fail(
        "Liveness",
        `${running.length} operation(s) still pending ${drainBoundMs} ms ` +
          "after the clients stopped",
      );
    } else if (this.#converged() === null) {
      this.#fail(
        "Liveness",
        "The members did not converge on one leader's committed log " +
          `within ${drainBoundMs} ms after the clients stopped`,
      );
    }
  }

  #checkHistory(): void {
    const history: HistoryOperation[] = [];
    for (const record of this.#records) {
      if (record.state === "ok") this.#stats.completed++;
      if (record.state === "unknown") this.#stats.unknown++;
      if (record.state === "failed") this.#stats.failed++;
      if (record.state === "failed") continue;
      history.push({
        key: record.operation.key ?? "",
        input: record.operation.input,
        output: record.output,
        call: record.call,
        ret: record.ret,
        pending: record.state !== "ok",
      });
    }
    const result = checkLinearizable(history, this.#options.workload.model);
    if (result.ok === false) {
      this.#fail(
        "Linearizability",
        `The history of key "${result.key}" is not linearizable`,
      );
    }
  }
}

function shuffle<T>(random: () => number, items: readonly T[]): T[] {
  const copy = [...items];
  for (let at = copy.length - 1; at > 0; at--) {
    const other = randomInt(random, at + 1);
    [copy[at], copy[other]] = [copy[other]!, copy[at]!];
  }
  return copy;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ------------------------------------------------------------ entry points

/**
 * Runs one seeded simulation of a cluster and reports the first broken
 * property, if any. Deterministic: the same options replay the same run.
 *
 * @param options The seed, the cluster, the faults, and your commands,
 *   context, workload and invariant.
 * @returns The outcome; `failure` is null when every check passed.
 *
 * @example Simulate a cluster of your own state machine
 * ```ts
 * import { equal } from "node:assert/strict";
 * import type { Command } from "./command.ts";
 * import { simulate, type Workload } from "./testing.ts";
 *
 * class Append implements Command<number[], number> {
 *   constructor(public value: number) {}
 *   name(): string {
 *     return "append";
 *   }
 *   apply(context: number[]): number {
 *     context.push(this.value);
 *     return context.length;
 *   }
 * }
 *
 * let next = 0;
 * const workload: Workload<number[], number[]> = {
 *   next: (random) =>
 *     random() < 0.5
 *       ? { kind: "exec", input: next, command: new Append(next++) }
 *       : { kind: "read", input: "read", query: (list) => [...list] },
 *   model: {
 *     init: () => [],
 *     step: (list, input) =>
 *       typeof input === "number"
 *         ? [[...list, input], list.length + 1]
 *         : [list, list],
 *   },
 * };
 * const result = await simulate({
 *   seed: 42,
 *   context: (): number[] => [],
 *   commands: [Append],
 *   workload,
 *   invariant: (contexts) => {
 *     for (const list of contexts.values()) {
 *       if (new Set(list).size !== list.length) throw new Error("twice");
 *     }
 *   },
 * });
 * equal(result.failure, null);
 * ```
 */
export function simulate<C, S>(
  options: SimulationOptions<C, S>,
): Promise<SimulationResult> {
  return new Simulation(options).run();
}

/**
 * Formats a failed run for a person: the broken property, the seed, the
 * replay command and the trace, if any.
 *
 * @param result A result of {@linkcode simulate}.
 * @returns The report, or an empty string when the run passed.
 */
export function formatFailure(result: SimulationResult): string {
  const failure = result.failure;
  if (!failure) return "";
  const lines = [
    `${failure.check} violated at ${failure.time.toFixed(2)} ms ` +
    `(seed ${result.seed}): ${failure.message}`,
    `replay: ${result.replay}`,
  ];
  if (failure.trace.length > 0) lines.push("trace:", ...failure.trace);
  return lines.join("\n");
}

/**
 * Runs {@linkcode simulate} for each seed and throws on the first failure
 * with its report: the one-liner for a `Deno.test`.
 *
 * @param seeds The seeds to run.
 * @param options Everything but the seed.
 * @throws {Error} with {@linkcode formatFailure}'s report.
 */
export async function assertSimulations<C, S>(
  seeds: Iterable<number>,
  options: Omit<SimulationOptions<C, S>, "seed">,
): Promise<void> {
  for (const seed of seeds) {
    const result = await simulate({ ...options, seed });
    if (result.failure) throw new Error(formatFailure(result));
  }
}
