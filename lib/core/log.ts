/**
 * The in-memory Raft log and what of it still has to be persisted.
 *
 * @module
 */

import { assert } from "./assert.ts";
import type { Entry } from "./types.ts";

/**
 * The log of one node: entries contiguous from index 1, plus the watermark
 * of what the shell has been handed for persisting (`unstableFrom`) and what
 * it confirmed durable (`persisted`).
 */
export class RaftLog {
  #entries: Entry[];
  #unstableFrom: number;
  #persisted: number;

  /** @param stored The durable log, contiguous from index 1. */
  constructor(stored: Entry[]) {
    stored.forEach((entry, position) => {
      assert(
        entry.index === position + 1,
        `Stored log is not contiguous: entry ${entry.index} at ${position}`,
      );
    });
    this.#entries = [...stored];
    this.#unstableFrom = stored.length + 1;
    this.#persisted = stored.length;
  }

  /** Index of the last entry, 0 when empty. */
  lastIndex(): number {
    return this.#entries.length;
  }

  /** Term of the last entry, 0 when empty. */
  lastTerm(): number {
    return this.#entries.at(-1)?.term ?? 0;
  }

  /** Highest index known to be durable on this node. */
  persisted(): number {
    return this.#persisted;
  }

  /**
   * The term at `index`: 0 for index 0, `undefined` past the end.
   *
   * @param index A log index.
   */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    return this.#entries[index - 1]?.term;
  }

  /**
   * The entry at `index`.
   *
   * @throws {AssertionError} when there is none.
   */
  entry(index: number): Entry {
    const entry = this.#entries[index - 1];
    assert(entry, `No entry at ${index}: last index is ${this.lastIndex()}`);
    return entry;
  }

  /** Entries from `from` to `to`, both inclusive, clamped to the log. */
  slice(from: number, to: number): Entry[] {
    return this.#entries.slice(Math.max(from, 1) - 1, Math.max(to, 0));
  }

  /**
   * The first index of the run of entries with the same term as `index`.
   * Used for the back-off hint of a rejected AppendEntries.
   */
  firstIndexOfTerm(index: number): number {
    const term = this.term(index);
    let first = index;
    while (first > 1 && this.term(first - 1) === term) first--;
    return first;
  }

  /** The last index holding `term` at or below `index`, or 0 for none. */
  lastIndexOfTerm(term: number, index: number): number {
    for (let at = Math.min(index, this.lastIndex()); at > 0; at--) {
      const found = this.term(at);
      if (found === undefined || found < term) return 0;
      if (found === term) return at;
    }
    return 0;
  }

  /** Whether a log ending at (`lastIndex`, `lastTerm`) is at least as new. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ownTerm = this.lastTerm();
    if (lastTerm !== ownTerm) return lastTerm > ownTerm;
    return lastIndex >= this.lastIndex();
  }

  /**
   * Appends entries as a leader does: right after the last one.
   *
   * @throws {AssertionError} when the first index is not contiguous.
   */
  append(entries: Entry[]): void {
    for (const entry of entries) {
      assert(
        entry.index === this.lastIndex() + 1,
        `Cannot append entry ${entry.index}: last index is ${this.lastIndex()}`,
      );
      this.#entries.push(entry);
    }
  }

  /**
   * Stores entries received from a leader after a matched prefix (Raft
   * 5.3): entries already present with the same term are kept; at the first
   * conflict the log is cut and the rest appended.
   *
   * @returns The index of the first conflict, or 0 when there was none.
   */
  merge(entries: Entry[]): number {
    for (const [position, entry] of entries.entries()) {
      const existing = this.term(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) this.#truncate(entry.index);
      this.append(entries.slice(position));
      return existing === undefined ? 0 : entry.index;
    }
    return 0;
  }

  #truncate(from: number): void {
    assert(from > 0, `Cannot truncate the log from ${from}`);
    this.#entries.length = from - 1;
    this.#unstableFrom = Math.min(this.#unstableFrom, from);
    this.#persisted = Math.min(this.#persisted, from - 1);
  }

  /** Whether some entries were not yet handed over for persisting. */
  hasUnstable(): boolean {
    return this.#unstableFrom <= this.lastIndex();
  }

  /** Hands over the entries not yet given to the shell for persisting. */
  takeUnstable(): Entry[] {
    const entries = this.#entries.slice(this.#unstableFrom - 1);
    this.#unstableFrom = this.lastIndex() + 1;
    return entries;
  }

  /**
   * Records that entries handed over earlier are durable up to (`index`,
   * `term`). Ignored when the log was cut below that entry meanwhile.
   */
  markPersisted(index: number, term: number): void {
    if (this.term(index) !== term) return;
    if (index >= this.#unstableFrom) return;
    this.#persisted = Math.max(this.#persisted, index);
  }
}
