/**
 * Callers waiting for the entry at a log index to be applied, and the
 * recent outcomes kept for callers that start waiting late.
 *
 * @module
 */

import { withDeadline } from "./_waiting.ts";
import type { Clock } from "./clock.ts";
import type { Entry } from "./core/types.ts";
import { NotCommittedError, TimedOutError } from "./errors.ts";

/** Where a leader placed a proposal. */
export interface Placement {
  /** The entry's index. */
  index: number;
  /** The term of the leader that placed it. */
  term: number;
}

/** What applying an entry gave: `apply`'s value, or what it threw. */
export type Outcome = { ok: true; value: unknown } | {
  ok: false;
  error: Error;
};

/** How many applied entries keep their outcome for late waiters. */
export const recentOutcomesMax = 4096;

interface PendingExec {
  term: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface RecentOutcome {
  index: number;
  term: number;
  outcome: Outcome;
}

/** How an {@linkcode EntryWaiters} reaches its owner. */
export interface EntryWaitersOptions {
  /** The clock deadlines are measured on. */
  clock: Clock;
  /** The owner's applied index. */
  appliedIndex(): number;
  /** The timeout that deadlines stem from, for messages. */
  timeoutMs: number;
}

/**
 * Callers waiting for the entry at an index. Several can wait at one
 * index (placed there by leaders of different terms): the entry that is
 * finally applied there decides each of them.
 */
export class EntryWaiters {
  readonly #options: EntryWaitersOptions;
  #pending = new Map<number, PendingExec[]>();
  #recent: (RecentOutcome | undefined)[] = [];

  /**
   * Creates an empty set of waiters.
   *
   * @param options The clock, applied index and timeout of the owner.
   */
  constructor(options: EntryWaitersOptions) {
    this.#options = options;
  }

  /**
   * Waits until the entry at `placement.index` is applied.
   *
   * @param placement Where the leader placed the caller's command.
   * @param deadline When to give up, on the clock's scale.
   * @returns What `apply` returned for that entry.
   * @throws {NotCommittedError} when an entry of another term is applied
   *   there.
   * @throws {TimedOutError} at the deadline, or when the entry was applied
   *   too long ago to remember its outcome.
   * @throws Whatever `apply` threw.
   */
  wait(placement: Placement, deadline: number): Promise<unknown> {
    const { index, term } = placement;
    if (index <= this.#options.appliedIndex()) {
      return this.#pastOutcome(index, term);
    }
    let pending: PendingExec;
    const result = new Promise<unknown>((resolve, reject) => {
      pending = { term, resolve, reject };
      this.#add(index, pending);
    });
    const { clock, timeoutMs } = this.#options;
    const remaining = Math.max(0, deadline - clock.now());
    return withDeadline(clock, result, remaining, () => {
      this.#remove(index, pending);
      return new TimedOutError(
        `Command at index ${index} was not applied within ` +
          `${timeoutMs} ms: outcome unknown`,
      );
    });
  }

  /**
   * Records the outcome of an applied entry and settles its waiters.
   *
   * @param entry The entry just applied.
   * @param outcome What applying it gave.
   */
  settle(entry: Entry, outcome: Outcome): void {
    this.#recent[entry.index % recentOutcomesMax] = {
      index: entry.index,
      term: entry.term,
      outcome,
    };
    const waiting = this.#pending.get(entry.index) ?? [];
    this.#pending.delete(entry.index);
    for (const pending of waiting) {
      if (pending.term !== entry.term) {
        pending.reject(notCommitted(entry.index, entry.term));
      } else if (outcome.ok) {
        pending.resolve(outcome.value);
      } else {
        pending.reject(outcome.error);
      }
    }
  }

  /** Rejects every waiter with `error`. */
  rejectAll(error: Error): void {
    for (const waiting of this.#pending.values()) {
      for (const pending of waiting) pending.reject(error);
    }
    this.#pending.clear();
  }

  #add(index: number, pending: PendingExec): void {
    const waiting = this.#pending.get(index);
    if (waiting) waiting.push(pending);
    else this.#pending.set(index, [pending]);
  }

  #remove(index: number, pending: PendingExec): void {
    const waiting = this.#pending.get(index) ?? [];
    const rest = waiting.filter((other) => other !== pending);
    if (rest.length > 0) this.#pending.set(index, rest);
    else this.#pending.delete(index);
  }

  /** The outcome of an entry applied before its caller started waiting. */
  #pastOutcome(index: number, term: number): Promise<unknown> {
    const recent = this.#recent[index % recentOutcomesMax];
    if (recent?.index !== index) {
      return Promise.reject(
        new TimedOutError(
          `Entry ${index} was applied too long ago to report: outcome unknown`,
        ),
      );
    }
    if (recent.term !== term) {
      return Promise.reject(notCommitted(index, recent.term));
    }
    return recent.outcome.ok
      ? Promise.resolve(recent.outcome.value)
      : Promise.reject(recent.outcome.error);
  }
}

function notCommitted(index: number, term: number): NotCommittedError {
  return new NotCommittedError(
    `Entry ${index} was overwritten by a leader of term ${term}: ` +
      "the command was not committed",
  );
}
