/**
 * The durable-state interface the server persists Raft state through.
 *
 * Two implementations share it and one test suite: the segmented
 * write-ahead log on disk ({@linkcode FileStorage}) and an in-memory twin
 * that can simulate crashes ({@linkcode MemoryStorage}).
 *
 * @module
 */

import type { Entry, HardState } from "../core/types.ts";

/** Everything a storage holds, as loaded by {@linkcode Storage.open}. */
export interface StoredState {
  /** Last saved hard state; `{ term: 0, vote: 0, commit: 0 }` when new. */
  hardState: HardState;
  /** Last saved applied index (see {@linkcode SaveBatch.applied}). */
  applied: number;
  /** The whole log, contiguous from index 1. */
  entries: Entry[];
}

/** One unit of work for {@linkcode Storage.save}. */
export interface SaveBatch {
  /** New hard state, if it changed. */
  hardState?: HardState;
  /**
   * Entries to store, contiguous. When the first index is at or below the
   * last stored index, the stored log is cut there first (a conflicting
   * suffix replaced by a new leader's entries).
   */
  entries?: Entry[];
  /** Highest index applied to the context, recorded for `recover: false`. */
  applied?: number;
}

/** Counters for tests and operators. */
export interface StorageStats {
  /** Calls to {@linkcode Storage.save}. */
  saves: number;
  /** Durability barriers issued (`syncData` calls for the file storage). */
  syncs: number;
  /** Bytes written since open. */
  bytesWritten: number;
}

/** Durable Raft state. */
export interface Storage {
  /**
   * Loads the stored state. Called once, before anything else.
   *
   * @throws {CorruptLogError} when a record before the tail is damaged.
   * @throws {DataPathLockedError} when another server holds the data path.
   */
  open(): Promise<StoredState>;
  /**
   * Stores a batch. The promise resolves only once the batch is durable.
   * Batches are applied in call order; concurrent calls share one sync.
   */
  save(batch: SaveBatch): Promise<void>;
  /** Counters since open. */
  stats(): StorageStats;
  /** Flushes, releases the data path, and closes. Idempotent. */
  close(): Promise<void>;
}
