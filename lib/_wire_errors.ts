/**
 * Pure helpers for errors and replies crossing the wire between a follower
 * and its leader, and for turning thrown values into errors.
 *
 * @module
 */

import type { Placement } from "./_entry_waiters.ts";
import { forwardableErrors, LilraftError } from "./errors.ts";

/**
 * Checks a leader's reply to a forwarded `exec`.
 *
 * @param value The reply's value.
 * @returns Where the leader placed the command.
 * @throws {TypeError} when the value is not an index and a term.
 */
export function checkPlacement(value: unknown): Placement {
  const { index, term } = (value ?? {}) as Partial<Placement>;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) {
    throw new TypeError("Invalid reply from the leader: expected index, term");
  }
  return { index: index!, term: term! };
}

/**
 * Turns a thrown value into an error.
 *
 * @param value Whatever was thrown.
 * @returns `value` itself when it is an error, else an error naming it.
 */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/**
 * Joins the messages of an error and its causes, at most eight deep.
 *
 * @param error The outermost error.
 * @returns The messages, outermost first, separated by ": ".
 */
export function causeChain(error: unknown): string {
  const parts: string[] = [];
  for (let at = error; at instanceof Error && parts.length < 8; at = at.cause) {
    parts.push(at.message);
  }
  return parts.join(": ");
}

/**
 * Rebuilds an error a leader reported by name and message.
 *
 * @param error The name and message from the reply.
 * @returns An error of the same class when it is forwardable, else a
 *   {@linkcode LilraftError} carrying the reported name.
 */
export function reviveError(error: { name: string; message: string }): Error {
  const ErrorClass = forwardableErrors[error.name];
  if (ErrorClass) return new ErrorClass(error.message);
  const revived = new LilraftError(error.message);
  revived.name = error.name;
  return revived;
}
