/**
 * The stored state both storages rebuild, and the checks a batch must pass
 * before either storage accepts it.
 *
 * @module
 */

import type { Entry } from "../core/types.ts";
import type { SaveBatch, StoredState } from "./storage.ts";

/** The state of a storage that was never written. */
export function emptyState(): StoredState {
  return {
    hardState: { term: 0, vote: 0, commit: 0 },
    applied: 0,
    entries: [],
  };
}

/** A deep copy, so that callers and storage never share objects. */
export function copyState(state: StoredState): StoredState {
  return {
    hardState: { ...state.hardState },
    applied: state.applied,
    entries: state.entries.map((entry) => ({ ...entry })),
  };
}

/**
 * Puts one entry into the log: it replaces every entry at or after its
 * index. Returns false, changing nothing, when the entry would leave a gap.
 */
export function placeEntry(entries: Entry[], entry: Entry): boolean {
  if (entry.index < 1 || entry.index > entries.length + 1) return false;

  entries.length = entry.index - 1;
  entries.push(entry);
  return true;
}

/** Applies a checked batch to a state, in the order the log replays it. */
export function applyBatch(state: StoredState, batch: SaveBatch): void {
  for (const entry of batch.entries ?? []) {
    const placed = placeEntry(state.entries, { ...entry });
    assert(placed, "a checked batch leaves no gap");
  }
  if (batch.hardState) state.hardState = { ...batch.hardState };
  if (batch.applied !== undefined) state.applied = batch.applied;
}

/**
 * Checks a batch against the last index stored before it and returns the
 * last index after it.
 *
 * @throws {RangeError} when the batch is malformed or leaves a gap.
 */
export function checkBatch(batch: SaveBatch, lastIndex: number): number {
  const hardState = batch.hardState;
  if (hardState) {
    checkCount("hard state term", hardState.term);
    checkCount("hard state vote", hardState.vote);
    checkCount("hard state commit", hardState.commit);
  }
  if (batch.applied !== undefined) checkCount("applied", batch.applied);

  return checkEntries(batch.entries ?? [], lastIndex);
}

function checkEntries(entries: Entry[], lastIndex: number): number {
  let last = lastIndex;
  for (const [position, entry] of entries.entries()) {
    checkCount("entry index", entry.index);
    checkCount("entry term", entry.term);
    if (position === 0 && (entry.index < 1 || entry.index > last + 1)) {
      throw new RangeError(
        `Cannot save entries as the first index leaves a gap: ` +
          `first index is ${entry.index}, last index is ${last}`,
      );
    }
    if (position > 0 && entry.index !== last + 1) {
      throw new RangeError(
        `Cannot save entries as they are not contiguous: ` +
          `index ${entry.index} follows ${last}`,
      );
    }
    last = entry.index;
  }
  return last;
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot save batch as the ${name} is not a count: ${value}`,
    );
  }
}

/** Stops the node when an invariant of this module breaks. */
export function assert(
  condition: boolean,
  invariant: string,
): asserts condition {
  if (!condition) throw new Error(`Storage invariant broken: ${invariant}`);
}
