/**
 * Group commit: concurrent saves share one durability barrier.
 *
 * Items are committed in push order. One drain loop takes everything
 * queued (up to a weight bound), commits it as one round, and settles every
 * promise of that round. Pushes that arrive while a round is in flight wait
 * for the next round.
 *
 * @module
 */

/** How a {@linkcode CommitQueue} writes and bounds its rounds. */
export interface CommitQueueOptions<T> {
  /** Writes the items of one round, in order, and makes them durable. */
  commit: (items: T[]) => Promise<void>;
  /** The weight of one item, e.g. its bytes; 0 when not given. */
  weigh?: (item: T) => number;
  /**
   * Largest total weight of one round, asked before each round. A round
   * always takes at least one item.
   */
  roundWeightMax?: () => number;
}

interface Waiter<T> {
  item: T;
  weight: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A queue of items made durable in shared rounds. */
export class CommitQueue<T> {
  #options: CommitQueueOptions<T>;
  #waiting: Waiter<T>[] = [];
  #draining: Promise<void> | null = null;
  #failure: Error | null = null;
  #generation = 0;

  /** @param options How rounds are written and bounded. */
  constructor(options: CommitQueueOptions<T>) {
    this.#options = options;
  }

  /**
   * Queues an item.
   *
   * @returns A promise that resolves once the item's round is durable, and
   * rejects when a round failed at or before it.
   */
  push(item: T): Promise<void> {
    if (this.#failure) return Promise.reject(failedEarlier(this.#failure));

    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const weight = this.#options.weigh?.(item) ?? 0;
    this.#waiting.push({ item, weight, resolve, reject });
    this.#draining ??= this.#drain();
    return promise;
  }

  /** Resolves once every item pushed so far has settled. */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /**
   * Forgets every item not yet settled, including a round in flight, and
   * clears a failure. The forgotten promises never settle.
   */
  reset(): void {
    this.#generation += 1;
    this.#waiting = [];
    this.#draining = null;
    this.#failure = null;
  }

  async #drain(): Promise<void> {
    const generation = this.#generation;
    while (this.#waiting.length > 0) {
      // Callers woken by the previous round queue their next item in the
      // microtasks before this one, so they join this round.
      await null;
      if (generation !== this.#generation) return;

      const round = this.#takeRound();
      try {
        await this.#options.commit(round.map((waiter) => waiter.item));
      } catch (error) {
        if (generation !== this.#generation) return;
        this.#fail(asError(error), round);
        break;
      }
      if (generation !== this.#generation) return;
      for (const waiter of round) waiter.resolve();
    }
    this.#draining = null;
  }

  #takeRound(): Waiter<T>[] {
    const weightMax = this.#options.roundWeightMax?.() ?? Infinity;
    let weight = this.#waiting[0]?.weight ?? 0;
    let count = 1;
    while (count < this.#waiting.length) {
      const next = this.#waiting[count]!.weight;
      if (weight + next > weightMax) break;
      weight += next;
      count += 1;
    }
    return this.#waiting.splice(0, count);
  }

  #fail(error: Error, round: Waiter<T>[]): void {
    this.#failure = error;
    for (const waiter of round) waiter.reject(error);

    const later = this.#waiting;
    this.#waiting = [];
    for (const waiter of later) waiter.reject(failedEarlier(error));
  }
}

function failedEarlier(failure: Error): Error {
  return new Error(
    `Cannot save as an earlier write failed: ${failure.message}`,
    { cause: failure },
  );
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
