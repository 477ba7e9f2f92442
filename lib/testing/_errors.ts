/**
 * How the simulator names and prints the errors it observes.
 *
 * @module
 */

/** The class name of an error, e.g. "TimedOutError". */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/** The message of an error, or the thrown value as a string. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
