/**
 * Invariant checks. A failed assertion means the node's state can no longer
 * be trusted: it throws an {@linkcode AssertionError} that the server treats
 * as fatal and never swallows.
 *
 * @module
 */

/** Thrown when an internal invariant of lilraft is broken. */
export class AssertionError extends Error {
  /** @param message The broken invariant and the values involved. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/**
 * Throws {@linkcode AssertionError} unless `condition` holds.
 *
 * @param condition The invariant.
 * @param message What broke, with the values involved.
 */
export function assert(
  condition: unknown,
  message: string,
): asserts condition {
  if (!condition) throw new AssertionError(message);
}
