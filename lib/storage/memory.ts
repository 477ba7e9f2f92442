/**
 * The in-memory twin of {@linkcode FileStorage}, for tests and simulation.
 *
 * It keeps the synced state and the batches written since the last sync.
 * {@linkcode MemoryStorage.crash} loses everything not yet synced, which is
 * what a power cut does to the file storage: the unsynced tail of its
 * write-ahead log may be lost or torn, and its torn-tail repair on open
 * brings it back to a prefix of what was written. The memory storage models
 * the worst such case: no unsynced batch survives.
 *
 * @module
 */

import { DataPathLockedError } from "../errors.ts";
import { CommitQueue } from "./_commit_queue.ts";
import {
  applyBatch,
  assert,
  checkBatch,
  copyState,
  emptyState,
} from "./_log_state.ts";
import type {
  SaveBatch,
  Storage,
  StorageStats,
  StoredState,
} from "./storage.ts";

/** Options of {@linkcode MemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Awaited once per sync, to model fsync latency (e.g. on a simulator's
   * virtual clock). A rejection fails the storage like a failed fsync.
   * Resolves at once by default.
   */
  sync?: () => Promise<void>;
}

/**
 * A {@linkcode Storage} held in memory that survives a simulated crash with
 * exactly what was synced.
 *
 * One object stands for one data path: after {@linkcode MemoryStorage.close}
 * or {@linkcode MemoryStorage.crash}, a new server opens the same object
 * again.
 *
 * @example Lose what was not synced
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { MemoryStorage } from "./memory.ts";
 *
 * const storage = new MemoryStorage();
 * await storage.open();
 * await storage.save({ applied: 1 });
 * void storage.save({ applied: 2 });
 * storage.crash();
 * equal((await storage.open()).applied, 1);
 * ```
 */
export class MemoryStorage implements Storage {
  #sync: () => Promise<void>;
  #queue: CommitQueue<SaveBatch>;
  #synced: StoredState = emptyState();
  #unsynced: SaveBatch[] = [];
  #lastIndex = 0;
  #isOpen = false;
  #epoch = 0;
  #stats: StorageStats = { saves: 0, syncs: 0, bytesWritten: 0 };

  /**
   * Creates an empty storage.
   *
   * @param options The sync hook.
   */
  constructor(options: MemoryStorageOptions = {}) {
    this.#sync = options.sync ?? (() => Promise.resolve());
    this.#queue = new CommitQueue({
      commit: (batches) => this.#commit(batches),
    });
  }

  /**
   * Loads the synced state.
   *
   * @throws {DataPathLockedError} when the storage is already open.
   */
  open(): Promise<StoredState> {
    if (this.#isOpen) {
      const message =
        "Cannot open data path as another server holds its lock: memory";
      return Promise.reject(new DataPathLockedError(message));
    }
    this.#isOpen = true;
    this.#queue.reset();
    this.#unsynced = [];
    this.#lastIndex = this.#synced.entries.length;
    this.#stats = { saves: 0, syncs: 0, bytesWritten: 0 };
    return Promise.resolve(copyState(this.#synced));
  }

  /**
   * Stores a batch; concurrent calls share one sync.
   *
   * @throws {RangeError} when the batch is malformed or leaves a gap.
   */
  save(batch: SaveBatch): Promise<void> {
    if (!this.#isOpen) {
      return Promise.reject(
        new Error("Cannot save as the storage is not open: closed"),
      );
    }
    try {
      this.#lastIndex = checkBatch(batch, this.#lastIndex);
    } catch (error) {
      return Promise.reject(error);
    }

    const copy = copyBatch(batch);
    this.#unsynced.push(copy);
    this.#stats.saves += 1;
    this.#stats.bytesWritten += JSON.stringify(copy).length;
    return this.#queue.push(copy);
  }

  /** Counters since open; `bytesWritten` counts JSON characters. */
  stats(): StorageStats {
    return { ...this.#stats };
  }

  /** Waits for pending saves and releases the storage. Idempotent. */
  async close(): Promise<void> {
    if (!this.#isOpen) return;

    await this.#queue.idle();
    this.#isOpen = false;
  }

  /**
   * Simulates a crash: drops every batch not yet synced and releases the
   * storage. Promises of dropped saves never settle, as the server that
   * awaited them is gone; a sync in flight completes for nobody.
   */
  crash(): void {
    this.#epoch += 1;
    this.#queue.reset();
    this.#unsynced = [];
    this.#isOpen = false;
  }

  async #commit(batches: SaveBatch[]): Promise<void> {
    const epoch = this.#epoch;
    this.#stats.syncs += 1;
    try {
      await this.#sync();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot sync memory storage: ${message}`, {
        cause: error,
      });
    }
    if (epoch !== this.#epoch) return;

    const synced = this.#unsynced.splice(0, batches.length);
    for (const [position, batch] of synced.entries()) {
      assert(batch === batches[position], "rounds sync in save order");
      applyBatch(this.#synced, batch);
    }
  }
}

function copyBatch(batch: SaveBatch): SaveBatch {
  const copy: SaveBatch = {};
  if (batch.hardState) copy.hardState = { ...batch.hardState };
  if (batch.entries) {
    copy.entries = batch.entries.map((entry) => ({ ...entry }));
  }
  if (batch.applied !== undefined) copy.applied = batch.applied;
  return copy;
}
