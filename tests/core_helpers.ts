/**
 * A deterministic harness for the pure Raft core: cores built from plain
 * data, a seeded random source, and a message loop that persists every
 * Ready at once and delivers its messages, step by step, without timers.
 *
 * @module
 */

import { Membership } from "../lib/core/membership.ts";
import {
  type CoreOptions,
  RaftCore,
  type ReadState,
} from "../lib/core/raft.ts";
import {
  type Entry,
  EntryKind,
  type HardState,
  type Member,
  type Message,
  type NodeId,
} from "../lib/core/types.ts";

/** Election timeout used by every test core, in ticks. */
export const electionTicks = 10;

/** Heartbeat interval used by every test core, in ticks. */
export const heartbeatTicks = 3;

/** Rounds a {@linkcode Cluster.deliver} may take before it gives up. */
const roundsMax = 1_000;

/** A seeded random source in [0, 1) (mulberry32). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The member with id `id` at `http://n<id>`. */
export function member(id: NodeId): Member {
  return { id, url: `http://n${id}` };
}

/** Members for each id, in order. */
export function members(...ids: NodeId[]): Member[] {
  return ids.map(member);
}

/** A command entry. */
export function entry(index: number, term: number): Entry {
  return { index, term, kind: EntryKind.Command, data: `c${index}` };
}

/** Command entries from `first` to `last`, all of `term`. */
export function entries(first: number, last: number, term: number): Entry[] {
  const made: Entry[] = [];
  for (let index = first; index <= last; index++) {
    made.push(entry(index, term));
  }
  return made;
}

/** A configuration entry of voters `ids` (joint with `oldIds`). */
export function configEntry(
  index: number,
  term: number,
  ids: NodeId[],
  oldIds?: NodeId[],
): Entry {
  const data = Membership.encode(
    oldIds
      ? { members: members(...ids), old: members(...oldIds) }
      : { members: members(...ids) },
  );
  return { index, term, kind: EntryKind.Config, data };
}

/** What a test core may start from; everything else has a default. */
export interface NodeOptions {
  /** The durable log; empty by default. */
  entries?: Entry[];
  /** The durable hard state; all zero by default. */
  hardState?: HardState;
  /** Founding voters (bootstrap); none: the node waits to join. */
  bootstrap?: NodeId[];
  /** Random source; `mulberry32(id)` by default. */
  random?: () => number;
  /** Entries carried by one AppendEntries request. */
  entriesPerAppendMax?: number;
  /** Payload characters carried by one AppendEntries request. */
  appendBytesMax?: number;
}

/** Builds one core with the harness' timing. */
export function makeCore(id: NodeId, options: NodeOptions = {}): RaftCore {
  const core: CoreOptions = {
    id,
    hardState: options.hardState ?? { term: 0, vote: 0, commit: 0 },
    entries: options.entries ?? [],
    applied: 0,
    bootstrap: options.bootstrap ? members(...options.bootstrap) : undefined,
    electionTicks,
    heartbeatTicks,
    random: options.random ?? mulberry32(id),
  };
  if (options.entriesPerAppendMax !== undefined) {
    core.entriesPerAppendMax = options.entriesPerAppendMax;
  }
  if (options.appendBytesMax !== undefined) {
    core.appendBytesMax = options.appendBytesMax;
  }
  return new RaftCore(core);
}

/** Persists and drops everything `core` has ready, returning its messages. */
export function drain(core: RaftCore): Message[] {
  const ready = core.ready();
  core.advance(ready);
  return [...ready.messagesNow, ...ready.messages];
}

/**
 * A set of cores wired by a message queue.
 *
 * Every round takes each core's Ready, persists it at once (advance), and
 * delivers all messages that {@linkcode Cluster.drop} lets through. A core
 * in {@linkcode Cluster.held} only sends its `messagesNow`: its Ready is
 * neither taken nor persisted until it is released.
 */
export class Cluster {
  /** The cores, by id. */
  readonly nodes = new Map<NodeId, RaftCore>();
  /** Every message delivered so far, in order. */
  readonly delivered: Message[] = [];
  /** Read-index answers each core handed out. */
  readonly reads = new Map<NodeId, ReadState[]>();
  /** Which cores were seen leading in which term. */
  readonly leadersByTerm = new Map<number, Set<NodeId>>();
  /** Cores whose Ready is held back (not persisted). */
  readonly held = new Set<NodeId>();
  /** Messages for which this returns true are lost. */
  drop: (message: Message) => boolean = () => false;

  /** @param cores The cores to wire together. */
  constructor(cores: RaftCore[]) {
    for (const core of cores) this.add(core);
  }

  /** A brand-new cluster of voters 1..size, bootstrapped. */
  static bootstrap(size: number, seed = 1): Cluster {
    const ids = Array.from({ length: size }, (_, at) => at + 1);
    return new Cluster(
      ids.map((id) =>
        makeCore(id, { bootstrap: ids, random: mulberry32(seed * 101 + id) })
      ),
    );
  }

  /** Wires one more core in. */
  add(core: RaftCore): void {
    this.nodes.set(core.id, core);
    this.reads.set(core.id, []);
  }

  /** The core with id `id`. */
  node(id: NodeId): RaftCore {
    const core = this.nodes.get(id);
    if (!core) throw new RangeError(`No node ${id} in the cluster`);
    return core;
  }

  /** Drops every message to or from any of `ids`. */
  isolate(...ids: NodeId[]): void {
    const cut = new Set(ids);
    this.drop = (message) => cut.has(message.from) || cut.has(message.to);
  }

  /** Lets every message through again. */
  heal(): void {
    this.drop = () => false;
  }

  /**
   * Ticks the cores `ids` once and delivers until quiet, `times` times.
   */
  tick(times = 1, ids: NodeId[] = [...this.nodes.keys()]): void {
    for (let done = 0; done < times; done++) {
      for (const id of ids) this.node(id).tick();
      this.#recordLeaders();
      this.deliver();
    }
  }

  /**
   * One round: collect every core's output, then deliver it.
   *
   * @returns How many messages were sent, dropped ones included.
   */
  round(): number {
    const outbox: Message[] = [];
    for (const core of this.nodes.values()) outbox.push(...this.#take(core));
    for (const message of outbox) {
      if (this.drop(message)) continue;
      const target = this.nodes.get(message.to);
      if (!target) continue;
      this.delivered.push(message);
      target.step(message);
    }
    this.#recordLeaders();
    return outbox.length;
  }

  /**
   * Runs rounds until no core sends anything.
   *
   * @throws {RangeError} when still busy after `roundsMax` rounds.
   */
  deliver(): void {
    this.runUntil(() => false);
  }

  /**
   * Runs rounds until `done()` holds after one, or nothing was sent.
   *
   * @throws {RangeError} when still busy after `roundsMax` rounds.
   */
  runUntil(done: () => boolean): void {
    for (let rounds = 0; rounds < roundsMax; rounds++) {
      const sent = this.round();
      if (done() || sent === 0) return;
    }
    throw new RangeError(`Cluster still busy after ${roundsMax} rounds`);
  }

  /** The leader of the highest term, if any. */
  leader(): RaftCore | undefined {
    const leaders = [...this.nodes.values()]
      .filter((core) => core.role === "leader")
      .sort((a, b) => b.term - a.term);
    return leaders[0];
  }

  #take(core: RaftCore): Message[] {
    if (this.held.has(core.id)) return core.takeMessagesNow();
    if (!core.hasReady()) return [];
    const ready = core.ready();
    core.advance(ready);
    this.reads.get(core.id)?.push(...ready.reads);
    return [...ready.messagesNow, ...ready.messages];
  }

  #recordLeaders(): void {
    for (const core of this.nodes.values()) {
      if (core.role !== "leader") continue;
      const leaders = this.leadersByTerm.get(core.term) ?? new Set();
      leaders.add(core.id);
      this.leadersByTerm.set(core.term, leaders);
    }
  }
}
