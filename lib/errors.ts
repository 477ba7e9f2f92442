/**
 * Errors that callers of lilraft may want to catch by class.
 *
 * Misuse (a bad argument) throws the built-in `TypeError` or `RangeError`.
 *
 * @module
 */

/** Base class of every lilraft error. */
export class LilraftError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed and the current state.
   * @param options Standard error options, e.g. a `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No leader is known, or the known leader could not be reached. */
export class NoLeaderError extends LilraftError {}

/**
 * The entry was overwritten by another leader and will never apply.
 * It is safe to retry the command.
 */
export class NotCommittedError extends LilraftError {}

/**
 * The deadline passed before the outcome was known: the command may or may
 * not have been applied, now or later.
 */
export class TimedOutError extends LilraftError {}

/** The server was stopped before the operation finished. */
export class StoppedError extends LilraftError {}

/** A membership change is already in progress, or a change failed. */
export class ConfigChangeError extends LilraftError {}

/** The write-ahead log is damaged before its tail. */
export class CorruptLogError extends LilraftError {}

/** Another running server holds the data path. */
export class DataPathLockedError extends LilraftError {}

/** Errors that keep their class when forwarded between nodes. */
export const forwardableErrors: Record<
  string,
  new (message: string) => Error
> = {
  NoLeaderError,
  NotCommittedError,
  TimedOutError,
  StoppedError,
  ConfigChangeError,
  TypeError,
  RangeError,
};
