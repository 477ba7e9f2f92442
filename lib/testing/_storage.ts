/**
 * Storage of one node incarnation, fenced off once the incarnation
 * crashes, and the durable state mirrored for the checks.
 *
 * @module
 */

import type { HardState, NodeId } from "../core/types.ts";
import type { MemoryStorage } from "../storage/memory.ts";
import type {
  SaveBatch,
  Storage,
  StorageStats,
  StoredState,
} from "../storage/storage.ts";

/** What a node has durably stored, mirrored from acknowledged saves. */
export interface DurableState {
  hardState: HardState;
  terms: number[];
  votes: Map<number, NodeId>;
}

/**
 * Storage of one node incarnation: passes through to the node's
 * {@linkcode MemoryStorage} until the incarnation crashes, then goes silent
 * so that a discarded server can never write into its successor's storage.
 */
export class FencedStorage implements Storage {
  dead = false;
  readonly #storage: MemoryStorage;
  readonly #onDurable: (batch: SaveBatch) => void;

  constructor(storage: MemoryStorage, onDurable: (batch: SaveBatch) => void) {
    this.#storage = storage;
    this.#onDurable = onDurable;
  }

  open(): Promise<StoredState> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.open();
  }

  save(batch: SaveBatch): Promise<void> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.save(batch).then(() => {
      if (!this.dead) this.#onDurable(batch);
    });
  }

  stats(): StorageStats {
    return this.#storage.stats();
  }

  close(): Promise<void> {
    if (this.dead) return new Promise(() => {});
    return this.#storage.close();
  }
}
