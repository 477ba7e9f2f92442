/**
 * Generic waiting on the server's clock: a promise with a deadline, and
 * callers waiting until a condition on the server's state holds.
 *
 * @module
 */

import { asError } from "./_wire_errors.ts";
import type { Clock } from "./clock.ts";

/**
 * Settles like `promise`, or rejects with `timeout()` once `timeoutMs` pass.
 *
 * @param clock The clock whose timer measures the deadline.
 * @param promise The promise to wait for.
 * @param timeoutMs How long to wait.
 * @param timeout Makes the error to reject with at the deadline; it may
 *   also forget whatever `promise` was waiting for.
 * @returns The value of `promise`.
 */
export function withDeadline<T>(
  clock: Clock,
  promise: Promise<T>,
  timeoutMs: number,
  timeout: () => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(() => reject(timeout()), timeoutMs);
    promise.then(resolve, reject).finally(() => clock.clearTimer(timer));
  });
}

interface Waiter {
  ready(): boolean;
  deadline: number;
  resolve(): void;
  reject(error: Error): void;
  timeout(): Error;
}

/**
 * Callers waiting until a condition holds. The owner calls
 * {@linkcode ConditionWaiters.check} whenever the state may have changed
 * and on every tick, which is also when deadlines are noticed.
 */
export class ConditionWaiters {
  readonly #clock: Clock;
  #waiters = new Set<Waiter>();

  /**
   * Creates an empty set of waiters.
   *
   * @param clock The clock deadlines are measured on.
   */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /**
   * Waits until `ready()` returns true; does not check it first.
   *
   * @param ready The condition; what it throws rejects the wait.
   * @param timeoutMs How long to wait at most.
   * @param timeout Makes the error to reject with at the deadline.
   */
  wait(
    ready: () => boolean,
    timeoutMs: number,
    timeout: () => Error,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.add({
        ready,
        deadline: this.#clock.now() + Math.max(0, timeoutMs),
        resolve,
        reject,
        timeout,
      });
    });
  }

  /** Settles every waiter whose condition holds, threw, or timed out. */
  check(): void {
    const now = this.#clock.now();
    for (const waiter of this.#waiters) {
      let done: boolean;
      try {
        done = waiter.ready();
      } catch (error) {
        this.#waiters.delete(waiter);
        waiter.reject(asError(error));
        continue;
      }
      if (done) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      } else if (now >= waiter.deadline) {
        this.#waiters.delete(waiter);
        waiter.reject(waiter.timeout());
      }
    }
  }

  /** Rejects every waiter with `error`. */
  rejectAll(error: Error): void {
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
  }
}
