/**
 * The safety properties of Raft, checked against what every node holds
 * after every event of a run.
 *
 * @module
 */

import {
  type Entry,
  EntryKind,
  type Member,
  type NodeId,
} from "../core/types.ts";
import type { RaftCore } from "../core/raft.ts";
import { inspectCore } from "../server.ts";
import type { SaveBatch } from "../storage/storage.ts";
import type { Incarnation, Slot } from "./_slot.ts";

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

export type Fail = (check: string, message: string) => void;

/** Checks of a node between two scans of its whole log. */
const fullLogCheckEvery = 32;

/** The safety properties, checked against what every node holds. */
export class Checker<C> {
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
      if (!this.#matches(id, entry, prevTerm)) return;
      verified.push(entry.term);
      prevTerm = entry.term;
    }
  }

  /** Records `entry` at first sight; false if it differs from that. */
  #matches(id: NodeId, entry: Entry, prevTerm: number): boolean {
    const key = `${entry.index}/${entry.term}`;
    const seen = this.#seen.get(key);
    if (!seen) {
      this.#seen.set(key, { kind: entry.kind, data: entry.data, prevTerm });
      if (entry.kind === EntryKind.Config) {
        this.#seenConfigs.push(voterSets(entry));
      }
      return true;
    }
    if (
      seen.kind === entry.kind && seen.data === entry.data &&
      seen.prevTerm === prevTerm
    ) {
      return true;
    }
    const other = { ...seen, index: entry.index, term: entry.term };
    this.#fail(
      "Log Matching",
      `Node ${id} holds entry ${key} that differs from another log's ` +
        `(${describeEntry(entry, prevTerm)} vs ` +
        `${describeEntry(other, seen.prevTerm)})`,
    );
    return false;
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
