/**
 * The server's source of time, replaceable by a virtual clock in tests.
 *
 * @module
 */

/** Timers and time, as the server uses them. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Runs `run` once after `ms` milliseconds; returns a handle. */
  setTimer(run: () => void, ms: number): unknown;
  /** Cancels a timer; unknown handles are ignored. */
  clearTimer(handle: unknown): void;
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (run, ms) => setTimeout(run, ms),
  clearTimer: (handle) => clearTimeout(handle as number),
};
