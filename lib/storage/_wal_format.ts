/**
 * The record format of the write-ahead log: framing, checksums, and the
 * JSON payload of each record type.
 *
 * A record is `length · crc · type · payload`: `length` (u32 LE) counts the
 * type byte and the payload, `crc` (u32 LE) is the CRC-32 of the same bytes,
 * `type` is one of {@linkcode RecordType}, and the payload is UTF-8 JSON:
 *
 * - entry: `[index, term, kind, data]`
 * - hard state: `[term, vote, commit]`
 * - applied index: a number
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { type Entry, EntryKind, type HardState } from "../core/types.ts";
import type { SaveBatch } from "./storage.ts";

/** The type byte of a record. */
export const RecordType = { Entry: 1, HardState: 2, Applied: 3 } as const;

/** Bytes before the type byte: length and checksum. */
export const headerBytes = 8;

/** Largest `length` of one record (type byte plus payload). */
export const recordBytesMax = 16 * 1024 * 1024;

/** One decoded record. */
export type LogRecord =
  | { type: typeof RecordType.Entry; entry: Entry }
  | { type: typeof RecordType.HardState; hardState: HardState }
  | { type: typeof RecordType.Applied; applied: number };

/** Why the bytes at `offset` do not hold a whole, intact record. */
export interface FrameDamage {
  /** Where the damaged record starts. */
  offset: number;
  /** What is wrong, for the error message. */
  reason: string;
  /** Whether the damage can only be an interrupted last write. */
  torn: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const entryKinds: readonly number[] = Object.values(EntryKind);

/**
 * Encodes a batch as records: entries first, then hard state, then the
 * applied index, so that a surviving prefix never holds a commit index
 * beyond its own entries.
 *
 * @throws {RangeError} when one record is larger than `recordBytesMax`.
 */
export function encodeBatch(batch: SaveBatch): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const entry of batch.entries ?? []) {
    const value = [entry.index, entry.term, entry.kind, entry.data];
    frames.push(encodeRecord(RecordType.Entry, value));
  }
  if (batch.hardState) {
    const { term, vote, commit } = batch.hardState;
    frames.push(encodeRecord(RecordType.HardState, [term, vote, commit]));
  }
  if (batch.applied !== undefined) {
    frames.push(encodeRecord(RecordType.Applied, batch.applied));
  }
  return frames;
}

function encodeRecord(type: number, value: unknown): Uint8Array {
  const payload = encoder.encode(JSON.stringify(value));
  const length = payload.length + 1;
  if (length > recordBytesMax) {
    throw new RangeError(
      `Cannot save record as it is too large: ${length} bytes`,
    );
  }

  const frame = new Uint8Array(headerBytes + length);
  frame[headerBytes] = type;
  frame.set(payload, headerBytes + 1);
  const view = new DataView(frame.buffer);
  view.setUint32(0, length, true);
  view.setUint32(4, crc32(frame.subarray(headerBytes)), true);
  return frame;
}

/**
 * Walks the records of one segment, calling `visit` with each intact one.
 *
 * @returns The first damage found, or null when every byte was a record.
 */
export function scanFrames(
  bytes: Uint8Array,
  visit: (type: number, payload: Uint8Array, offset: number) => void,
): FrameDamage | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let offset = 0;
  while (offset < bytes.length) {
    const damage = checkFrame(bytes, view, offset);
    if (damage) return damage;

    const end = offset + headerBytes + view.getUint32(offset, true);
    visit(
      bytes[offset + headerBytes]!,
      bytes.subarray(offset + headerBytes + 1, end),
      offset,
    );
    offset = end;
  }
  return null;
}

function checkFrame(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
): FrameDamage | null {
  if (bytes.length - offset < headerBytes) {
    return { offset, reason: "header cut short", torn: true };
  }
  const length = view.getUint32(offset, true);
  if (length === 0) {
    const torn = isZeroFrom(bytes, offset);
    return { offset, reason: "length is zero", torn };
  }

  const end = offset + headerBytes + length;
  if (end > bytes.length) {
    const torn = !hasRecordAfter(bytes, view, offset + 1);
    return { offset, reason: "length runs past the end", torn };
  }
  if (length > recordBytesMax) {
    return { offset, reason: `length ${length} is too large`, torn: false };
  }

  const checksum = crc32(bytes.subarray(offset + headerBytes, end));
  if (checksum !== view.getUint32(offset + 4, true)) {
    return { offset, reason: "checksum mismatch", torn: end === bytes.length };
  }
  return null;
}

/** A tail of zeros: the file grew but its data never reached the disk. */
function isZeroFrom(bytes: Uint8Array, offset: number): boolean {
  for (let position = offset; position < bytes.length; position++) {
    if (bytes[position] !== 0) return false;
  }
  return true;
}

/**
 * Whether an intact record starts anywhere after `from`. A length that
 * runs past the end is a torn write only when nothing intact follows; a
 * damaged length field must not hide the records after it.
 */
function hasRecordAfter(
  bytes: Uint8Array,
  view: DataView,
  from: number,
): boolean {
  for (let offset = from; offset + headerBytes + 2 <= bytes.length; offset++) {
    if (!looksLikeRecord(bytes, view, offset)) continue;

    const end = offset + headerBytes + view.getUint32(offset, true);
    const checksum = crc32(bytes.subarray(offset + headerBytes, end));
    if (checksum === view.getUint32(offset + 4, true)) return true;
  }
  return false;
}

function looksLikeRecord(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
): boolean {
  const length = view.getUint32(offset, true);
  if (length < 2 || offset + headerBytes + length > bytes.length) return false;

  const type = bytes[offset + headerBytes]!;
  const first = bytes[offset + headerBytes + 1]!;
  const startsJson = first === 0x5b || (first >= 0x30 && first <= 0x39);
  return type >= RecordType.Entry && type <= RecordType.Applied && startsJson;
}

/**
 * Decodes the payload of an intact record.
 *
 * @returns The record, or the reason it is malformed.
 */
export function decodeRecord(
  type: number,
  payload: Uint8Array,
): LogRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return "payload is not JSON";
  }

  if (type === RecordType.Entry) return decodeEntry(value);
  if (type === RecordType.HardState) return decodeHardState(value);
  if (type === RecordType.Applied) {
    if (!isCount(value)) return "applied index is not a count";
    return { type, applied: value };
  }
  return `unknown record type ${type}`;
}

function decodeEntry(value: unknown): LogRecord | string {
  if (!Array.isArray(value) || value.length !== 4) {
    return "entry is not a 4-element array";
  }
  const [index, term, kind, data] = value as unknown[];
  if (!isCount(index) || index < 1 || !isCount(term)) {
    return "entry index or term is not a count";
  }
  if (!isCount(kind) || !entryKinds.includes(kind)) {
    return "entry kind is unknown";
  }
  if (typeof data !== "string") return "entry data is not a string";

  const entry: Entry = { index, term, kind: kind as EntryKind, data };
  return { type: RecordType.Entry, entry };
}

function decodeHardState(value: unknown): LogRecord | string {
  if (!Array.isArray(value) || value.length !== 3) {
    return "hard state is not a 3-element array";
  }
  const [term, vote, commit] = value as unknown[];
  if (!isCount(term) || !isCount(vote) || !isCount(commit)) {
    return "hard state field is not a count";
  }
  return { type: RecordType.HardState, hardState: { term, vote, commit } };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
