/**
 * Quorum arithmetic for simple and joint configurations.
 *
 * Every decision that needs a majority (winning an election, committing an
 * entry, confirming a read) goes through {@linkcode Quorum}, so that joint
 * consensus (a majority of the old set and of the new set) holds everywhere.
 *
 * @module
 */

import type { NodeId } from "./types.ts";

/** The voter sets a decision must convince: one, or two while joint. */
export class Quorum {
  /** Voters of the current (incoming) configuration. */
  readonly voters: readonly NodeId[];
  /** Voters of the outgoing configuration; empty unless joint. */
  readonly old: readonly NodeId[];

  /**
   * @param voters The (new) voter set.
   * @param old The outgoing voter set during a joint change, else empty.
   */
  constructor(voters: readonly NodeId[], old: readonly NodeId[] = []) {
    this.voters = [...voters].sort((a, b) => a - b);
    this.old = [...old].sort((a, b) => a - b);
  }

  /** Whether this is a joint configuration. */
  get joint(): boolean {
    return this.old.length > 0;
  }

  /** Every voter of either set, without duplicates. */
  all(): NodeId[] {
    return [...new Set([...this.voters, ...this.old])];
  }

  /** Whether `id` votes in either set. */
  includes(id: NodeId): boolean {
    return this.voters.includes(id) || this.old.includes(id);
  }

  /**
   * The highest index that a majority of each set has reached.
   *
   * @param matchOf The index each voter is known to hold.
   * @returns The committed index; 0 when a set is empty.
   */
  committedIndex(matchOf: (id: NodeId) => number): number {
    const incoming = majorityIndex(this.voters, matchOf);
    if (!this.joint) return incoming;
    return Math.min(incoming, majorityIndex(this.old, matchOf));
  }

  /**
   * The outcome of a vote so far.
   *
   * @param answer `true` granted, `false` rejected, `undefined` unknown.
   * @returns "won" once both majorities granted, "lost" once either
   *   majority can no longer be reached, else "pending".
   */
  voteResult(
    answer: (id: NodeId) => boolean | undefined,
  ): "won" | "lost" | "pending" {
    const incoming = setResult(this.voters, answer);
    const outgoing = this.joint ? setResult(this.old, answer) : "won";
    if (incoming === "lost" || outgoing === "lost") return "lost";
    if (incoming === "won" && outgoing === "won") return "won";
    return "pending";
  }
}

function majorityIndex(
  voters: readonly NodeId[],
  matchOf: (id: NodeId) => number,
): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[Math.floor(voters.length / 2)] ?? 0;
}

function setResult(
  voters: readonly NodeId[],
  answer: (id: NodeId) => boolean | undefined,
): "won" | "lost" | "pending" {
  if (voters.length === 0) return "lost";
  const needed = Math.floor(voters.length / 2) + 1;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = answer(id);
    if (vote === true) granted++;
    if (vote === false) rejected++;
  }
  if (granted >= needed) return "won";
  if (rejected > voters.length - needed) return "lost";
  return "pending";
}
