/**
 * The durable storage: a segmented write-ahead log in a data directory.
 *
 * The directory holds `LOCK`, locked exclusively while a server has it
 * open, and segments `wal-<16-digit sequence>.log`, replayed in order on
 * open. Every save appends records (see `_wal_format.ts`); an entry record
 * with index `i` replaces every entry at or after `i`, which is how a
 * conflicting suffix is cut. Concurrent saves share one write and one
 * `syncData()`.
 *
 * @module
 */

import { join } from "node:path";
import { CorruptLogError, DataPathLockedError } from "../errors.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { CommitQueue } from "./_commit_queue.ts";
import { checkBatch, emptyState, placeEntry } from "./_log_state.ts";
import {
  decodeRecord,
  encodeBatch,
  type LogRecord,
  RecordType,
  scanFrames,
} from "./_wal_format.ts";
import type {
  SaveBatch,
  Storage,
  StorageStats,
  StoredState,
} from "./storage.ts";

/** Options of {@linkcode FileStorage}. */
export interface FileStorageOptions {
  /** Receives recovery and failure logs; silent by default. */
  logger?: Logger;
  /** Size at which a new segment starts; 64 MiB by default. */
  segmentBytesMax?: number;
}

/** Default of {@linkcode FileStorageOptions.segmentBytesMax}. */
export const segmentBytesMaxDefault = 64 * 1024 * 1024;

/** Most bytes one group commit writes before its sync. */
const roundBytesMax = 4 * 1024 * 1024;

const segmentPattern = /^wal-(\d{16})\.log$/;

interface Encoded {
  frames: Uint8Array[];
  bytes: number;
}

type Phase = "new" | "opening" | "open" | "closing" | "closed";

/**
 * A {@linkcode Storage} on disk.
 *
 * @example Save and load a term
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { FileStorage } from "./file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const storage = new FileStorage(dir);
 * await storage.open();
 * await storage.save({ hardState: { term: 2, vote: 1, commit: 0 } });
 * await storage.close();
 *
 * const reopened = new FileStorage(dir);
 * equal((await reopened.open()).hardState.term, 2);
 * await reopened.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStorage implements Storage {
  #dir: string;
  #logger: Logger;
  #segmentBytesMax: number;
  #queue: CommitQueue<Encoded>;
  #phase: Phase = "new";
  #opening: Promise<StoredState> | null = null;
  #closing: Promise<void> | null = null;
  #lock: Deno.FsFile | null = null;
  #segment: Deno.FsFile | null = null;
  #sequence = 0;
  #segmentBytes = 0;
  #lastIndex = 0;
  #stats: StorageStats = { saves: 0, syncs: 0, bytesWritten: 0 };

  /**
   * Creates the storage; nothing is touched until {@linkcode open}.
   *
   * @param dir The data directory; created on open when missing.
   * @param options Logger and segment size.
   */
  constructor(dir: string, options: FileStorageOptions = {}) {
    const segmentBytesMax = options.segmentBytesMax ?? segmentBytesMaxDefault;
    if (!Number.isSafeInteger(segmentBytesMax) || segmentBytesMax < 1) {
      throw new RangeError(
        `Cannot use segment size as it is not positive: ${segmentBytesMax}`,
      );
    }
    this.#dir = dir;
    this.#logger = options.logger ?? silentLogger;
    this.#segmentBytesMax = segmentBytesMax;
    this.#queue = new CommitQueue<Encoded>({
      commit: (items) => this.#commit(items),
      weigh: (item) => item.bytes,
      roundWeightMax: () => this.#roundBytesMax(),
    });
  }

  /**
   * Locks the directory, replays the log, and cuts a torn tail.
   *
   * @throws {DataPathLockedError} when another storage holds the lock.
   * @throws {CorruptLogError} when a record before the tail is damaged.
   */
  open(): Promise<StoredState> {
    if (this.#phase !== "new") {
      const message = `Cannot open storage as it was opened: ${this.#phase}`;
      return Promise.reject(new Error(message));
    }
    this.#phase = "opening";
    const opening = this.#openFiles();
    this.#opening = opening;
    return opening;
  }

  async #openFiles(): Promise<StoredState> {
    try {
      await Deno.mkdir(this.#dir, { recursive: true });
      this.#lock = await lockDirectory(this.#dir);
      const state = await this.#load();
      this.#phase = "open";
      return state;
    } catch (error) {
      this.#releaseFiles();
      this.#phase = "new";
      throw error;
    }
  }

  /**
   * Appends a batch; resolves once it is synced.
   *
   * @throws {RangeError} when the batch is malformed or leaves a gap.
   */
  save(batch: SaveBatch): Promise<void> {
    if (this.#phase !== "open") {
      const message = `Cannot save as the storage is not open: ${this.#phase}`;
      return Promise.reject(new Error(message));
    }
    let encoded: Encoded;
    try {
      const lastIndex = checkBatch(batch, this.#lastIndex);
      const frames = encodeBatch(batch);
      encoded = { frames, bytes: sumLengths(frames) };
      this.#lastIndex = lastIndex;
    } catch (error) {
      return Promise.reject(error);
    }

    this.#stats.saves += 1;
    return this.#queue.push(encoded);
  }

  /** Counters since open. */
  stats(): StorageStats {
    return { ...this.#stats };
  }

  /** Waits for pending saves, closes the files, unlocks. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    await this.#opening?.catch(() => {});
    if (this.#phase === "open") {
      this.#phase = "closing";
      await this.#queue.idle();
    }
    this.#releaseFiles();
    this.#phase = "closed";
  }

  #releaseFiles(): void {
    this.#segment?.close();
    this.#segment = null;
    // Closing the only descriptor of the lock file releases the lock.
    this.#lock?.close();
    this.#lock = null;
  }

  async #load(): Promise<StoredState> {
    const sequences = await listSegments(this.#dir);
    const state = emptyState();
    let lastBytes = 0;
    for (const [position, sequence] of sequences.entries()) {
      const isLast = position === sequences.length - 1;
      lastBytes = await this.#replaySegment(sequence, state, isLast);
    }
    await this.#openSegment(sequences.at(-1), lastBytes);
    this.#lastIndex = state.entries.length;

    this.#logger.info("opened write-ahead log", {
      dir: this.#dir,
      segments: Math.max(sequences.length, 1),
      entries: state.entries.length,
      lastIndex: this.#lastIndex,
      term: state.hardState.term,
    });
    return state;
  }

  /** Replays one segment into `state`; returns its intact length. */
  async #replaySegment(
    sequence: number,
    state: StoredState,
    isLast: boolean,
  ): Promise<number> {
    const path = join(this.#dir, segmentName(sequence));
    const bytes = await Deno.readFile(path);
    const damage = scanFrames(bytes, (type, payload, offset) => {
      const record = decodeRecord(type, payload);
      if (typeof record === "string") throw corrupt(path, offset, record);
      applyRecord(state, record, path, offset);
    });
    if (!damage) return bytes.length;

    if (!isLast || !damage.torn) {
      throw corrupt(path, damage.offset, damage.reason);
    }
    await this.#cutTail(path, damage.offset, bytes.length);
    return damage.offset;
  }

  async #cutTail(path: string, offset: number, size: number): Promise<void> {
    const file = await Deno.open(path, { write: true });
    try {
      await file.truncate(offset);
      await file.syncData();
    } finally {
      file.close();
    }
    const bytes = size - offset;
    this.#logger.info("cut torn tail of write-ahead log", {
      file: path,
      offset,
      bytes,
    });
  }

  async #openSegment(sequence: number | undefined, bytes: number) {
    if (sequence === undefined) {
      this.#segment = await createSegment(this.#dir, 1);
      this.#sequence = 1;
      this.#segmentBytes = 0;
      return;
    }
    const path = join(this.#dir, segmentName(sequence));
    this.#segment = await Deno.open(path, { append: true });
    this.#sequence = sequence;
    this.#segmentBytes = bytes;
  }

  #roundBytesMax(): number {
    const room = this.#segmentBytesMax - this.#segmentBytes;
    const rollsFirst = room <= 0;
    return Math.min(roundBytesMax, rollsFirst ? this.#segmentBytesMax : room);
  }

  async #commit(items: Encoded[]): Promise<void> {
    const bytes = concatenate(items);
    if (bytes.length === 0) return;

    try {
      const full = this.#segmentBytes + bytes.length > this.#segmentBytesMax;
      if (full && this.#segmentBytes > 0) await this.#roll();
      writeAll(this.#segment!, bytes);
      this.#segmentBytes += bytes.length;
      this.#stats.bytesWritten += bytes.length;
      await this.#segment!.syncData();
      this.#stats.syncs += 1;
    } catch (error) {
      throw this.#writeFailed(error);
    }
  }

  async #roll(): Promise<void> {
    const sequence = this.#sequence + 1;
    const segment = await createSegment(this.#dir, sequence);
    this.#segment!.close();
    this.#segment = segment;
    this.#sequence = sequence;
    this.#segmentBytes = 0;
    this.#logger.debug("started write-ahead log segment", { sequence });
  }

  #writeFailed(cause: unknown): Error {
    const file = join(this.#dir, segmentName(this.#sequence));
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.#logger.error("write-ahead log write failed", { file, reason });
    return new Error(
      `Cannot save to write-ahead log as a write failed: ${file} (${reason})`,
      { cause },
    );
  }
}

async function lockDirectory(dir: string): Promise<Deno.FsFile> {
  const path = join(dir, "LOCK");
  const file = await Deno.open(path, { read: true, write: true, create: true });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) {
    throw new DataPathLockedError(
      `Cannot open data path as another server holds its lock: ${path}`,
    );
  }
  return file;
}

/** The segment sequences in the directory, checked to be contiguous. */
async function listSegments(dir: string): Promise<number[]> {
  const sequences: number[] = [];
  for await (const item of Deno.readDir(dir)) {
    const match = segmentPattern.exec(item.name);
    if (item.isFile && match) sequences.push(Number(match[1]));
  }
  sequences.sort((left, right) => left - right);

  for (const [position, sequence] of sequences.entries()) {
    const previous = sequences[position - 1];
    if (previous !== undefined && sequence !== previous + 1) {
      const missing = join(dir, segmentName(previous + 1));
      throw new CorruptLogError(
        `Cannot open write-ahead log as a segment is missing: ${missing}`,
      );
    }
  }
  return sequences;
}

async function createSegment(
  dir: string,
  sequence: number,
): Promise<Deno.FsFile> {
  const path = join(dir, segmentName(sequence));
  const file = await Deno.open(path, { append: true, createNew: true });
  try {
    await syncDirectory(dir);
  } catch (error) {
    file.close();
    throw error;
  }
  return file;
}

/** Makes a new directory entry durable (works on Linux). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir);
  try {
    await handle.syncData();
  } finally {
    handle.close();
  }
}

function segmentName(sequence: number): string {
  return `wal-${String(sequence).padStart(16, "0")}.log`;
}

function applyRecord(
  state: StoredState,
  record: LogRecord,
  path: string,
  offset: number,
): void {
  if (record.type === RecordType.Entry) {
    const lastIndex = state.entries.length;
    if (!placeEntry(state.entries, record.entry)) {
      const reason = `entry ${record.entry.index} leaves a gap after ` +
        `${lastIndex}`;
      throw corrupt(path, offset, reason);
    }
  } else if (record.type === RecordType.HardState) {
    state.hardState = record.hardState;
  } else {
    state.applied = record.applied;
  }
}

function corrupt(
  path: string,
  offset: number,
  reason: string,
): CorruptLogError {
  return new CorruptLogError(
    `Cannot open write-ahead log as a record is damaged: ` +
      `${path} at offset ${offset} (${reason})`,
  );
}

function sumLengths(frames: Uint8Array[]): number {
  let bytes = 0;
  for (const frame of frames) bytes += frame.length;
  return bytes;
}

function concatenate(items: Encoded[]): Uint8Array {
  let total = 0;
  for (const item of items) total += item.bytes;

  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const item of items) {
    for (const frame of item.frames) {
      bytes.set(frame, offset);
      offset += frame.length;
    }
  }
  return bytes;
}

/**
 * Writes synchronously: a write into the page cache takes microseconds,
 * less than handing it to a worker thread and back; only the sync that
 * follows waits on the disk.
 */
function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) {
    written += file.writeSync(bytes.subarray(written));
  }
}
