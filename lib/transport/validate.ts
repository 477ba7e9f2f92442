/**
 * Strict validation of untrusted transport payloads.
 *
 * Everything that arrives from the network passes through these parsers
 * before it reaches the Raft core. They check every field of every message
 * variant and copy only the known fields, so that nothing foreign ends up in
 * the log or the state machine.
 *
 * @module
 */

import {
  type Entry,
  EntryKind,
  type Member,
  type Message,
  type NodeId,
} from "../core/types.ts";
import type { ForwardReply, ForwardRequest } from "./transport.ts";

/** The most messages one request body may carry. */
export const messagesPerBodyMax = 10_000;

/** The most log entries, summed over all messages, one body may carry. */
export const entriesPerBodyMax = 10_000;

/** The most members a forwarded configuration change may list. */
export const membersPerConfigMax = 1_000;

/** Messages of one request body, all from the same sender. */
export interface MessageBody {
  /** The sender shared by every message of the body. */
  from: NodeId;
  /** The validated messages, in body order. */
  messages: Message[];
}

type FieldKind = "id" | "count" | "boolean" | "entries";

const commonFields: [string, FieldKind][] = [
  ["from", "id"],
  ["to", "id"],
  ["term", "count"],
];

const messageFields: Record<string, [string, FieldKind][]> = {
  vote: [
    ["pre", "boolean"],
    ["lastIndex", "count"],
    ["lastTerm", "count"],
    ["transfer", "boolean"],
  ],
  voteResponse: [["pre", "boolean"], ["granted", "boolean"]],
  append: [
    ["prevIndex", "count"],
    ["prevTerm", "count"],
    ["entries", "entries"],
    ["commit", "count"],
  ],
  appendResponse: [
    ["success", "boolean"],
    ["matchIndex", "count"],
    ["rejectedIndex", "count"],
    ["conflictTerm", "count"],
    ["conflictIndex", "count"],
  ],
  heartbeat: [["commit", "count"], ["round", "count"]],
  heartbeatResponse: [["round", "count"]],
  timeoutNow: [],
};

const messageTypes = Object.keys(messageFields).join(", ");

const entryKinds = new Set<unknown>(Object.values(EntryKind));

/**
 * Validates an array of Raft messages received from the network.
 *
 * @param value Parsed JSON of unknown shape.
 * @returns Fresh copies of the messages holding only their known fields.
 * @throws {TypeError} when `value` is not an array of valid messages, or
 * holds more than {@linkcode messagesPerBodyMax} messages or more than
 * {@linkcode entriesPerBodyMax} entries in all; the message names the
 * position and the field.
 *
 * @example Validate one heartbeat
 * ```ts
 * import { parseMessages } from "./validate.ts";
 * const [message] = parseMessages([
 *   { type: "heartbeat", from: 1, to: 2, term: 3, commit: 4, round: 5 },
 * ]);
 * ```
 */
export function parseMessages(value: unknown): Message[] {
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Invalid messages: expected an array, got ${describe(value)}`,
    );
  }
  if (value.length > messagesPerBodyMax) {
    const limit = messagesPerBodyMax;
    throw new TypeError(
      `Invalid messages: at most ${limit} are allowed, got ${value.length}`,
    );
  }

  const budget = { entries: entriesPerBodyMax };
  const messages: Message[] = [];
  for (let position = 0; position < value.length; position++) {
    messages.push(parseMessage(value[position], position, budget));
  }
  return messages;
}

/**
 * Validates a message request body, `{ "messages": Message[] }`, and checks
 * that every message comes from the same, non-empty, sender.
 *
 * @param value Parsed JSON of unknown shape.
 * @returns The sender and the validated messages.
 * @throws {TypeError} when the body or any message is invalid, the body is
 * empty, or two messages name different senders.
 */
export function parseMessageBody(value: unknown): MessageBody {
  if (!isRecord(value)) {
    throw new TypeError(
      `Invalid body: expected an object, got ${describe(value)}`,
    );
  }
  const messages = parseMessages(value.messages);

  const first = messages[0];
  if (first === undefined) {
    throw new TypeError('Invalid body: "messages" must not be empty');
  }
  for (let position = 1; position < messages.length; position++) {
    const from = messages[position]!.from;
    if (from === first.from) continue;
    const reason = `"from" is ${from} but the body is from ${first.from}`;
    throw new TypeError(`Invalid message at [${position}]: ${reason}`);
  }
  return { from: first.from, messages };
}

/**
 * Validates a forwarded client request.
 *
 * @param value Parsed JSON of unknown shape.
 * @returns A fresh copy holding only the fields of its kind.
 * @throws {TypeError} when `value` is not a valid {@linkcode ForwardRequest}.
 *
 * @example Validate a read-index request
 * ```ts
 * import { parseForwardRequest } from "./validate.ts";
 * const request = parseForwardRequest({ kind: "readIndex" });
 * ```
 */
export function parseForwardRequest(value: unknown): ForwardRequest {
  if (!isRecord(value)) {
    throw new TypeError(
      `Invalid forward request: expected an object, got ${describe(value)}`,
    );
  }

  switch (value.kind) {
    case "exec":
      if (typeof value.name !== "string") {
        throw new TypeError(
          `Invalid forward request: "name" must be a string, got ${
            describe(value.name)
          }`,
        );
      }
      if (
        value.from !== undefined &&
        (!Number.isSafeInteger(value.from) || (value.from as number) <= 0)
      ) {
        throw new TypeError(
          `Invalid forward request: "from" must be a positive integer, got ${
            describe(value.from)
          }`,
        );
      }
      return {
        kind: "exec",
        name: value.name,
        payload: value.payload,
        ...(value.from !== undefined && { from: value.from as number }),
      };
    case "readIndex":
      return { kind: "readIndex" };
    case "config":
      return { kind: "config", members: parseMembers(value.members) };
    default:
      throw new TypeError(
        "Invalid forward request: " +
          `"kind" must be exec, readIndex or config, got ${
            describe(value.kind)
          }`,
      );
  }
}

/**
 * Validates the reply to a forwarded request.
 *
 * @param value Parsed JSON of unknown shape.
 * @returns A fresh copy holding only the fields of its outcome.
 * @throws {TypeError} when `value` is not a valid {@linkcode ForwardReply}.
 */
export function parseForwardReply(value: unknown): ForwardReply {
  if (!isRecord(value)) {
    throw new TypeError(
      `Invalid forward reply: expected an object, got ${describe(value)}`,
    );
  }
  if (value.ok === true) return { ok: true, value: value.value };
  if (value.ok !== false) {
    throw new TypeError(
      `Invalid forward reply: "ok" must be a boolean, got ${
        describe(value.ok)
      }`,
    );
  }

  const error = value.error;
  if (
    !isRecord(error) || typeof error.name !== "string" ||
    typeof error.message !== "string"
  ) {
    throw new TypeError(
      'Invalid forward reply: "error" must have a string "name" and "message"',
    );
  }
  return { ok: false, error: { name: error.name, message: error.message } };
}

function parseMessage(
  value: unknown,
  position: number,
  budget: { entries: number },
): Message {
  const where = `Invalid message at [${position}]`;
  if (!isRecord(value)) {
    throw new TypeError(`${where}: expected an object, got ${describe(value)}`);
  }
  const type = value.type;
  const fields = typeof type === "string" && Object.hasOwn(messageFields, type)
    ? messageFields[type]
    : undefined;
  if (fields === undefined) {
    throw new TypeError(
      `${where}: "type" must be one of ${messageTypes}, got ${
        describe(value.type)
      }`,
    );
  }

  const message: Record<string, unknown> = { type: value.type };
  for (const [name, kind] of commonFields) {
    message[name] = parseField(value[name], name, kind, where, budget);
  }
  for (const [name, kind] of fields) {
    message[name] = parseField(value[name], name, kind, where, budget);
  }
  if (type === "append") checkContiguous(message, where);
  return message as unknown as Message;
}

/** The core may assert contiguity, so a peer must not be able to break it. */
function checkContiguous(message: Record<string, unknown>, where: string) {
  const prevIndex = message.prevIndex as number;
  const entries = message.entries as Entry[];
  for (let position = 0; position < entries.length; position++) {
    const expected = prevIndex + 1 + position;
    if (entries[position]!.index !== expected) {
      throw new TypeError(
        `${where}: "entries[${position}].index" must be ${expected}, got ${
          entries[position]!.index
        }`,
      );
    }
  }
}

function parseField(
  value: unknown,
  name: string,
  kind: FieldKind,
  where: string,
  budget: { entries: number },
): unknown {
  switch (kind) {
    case "id":
      if (isId(value)) return value;
      throw new TypeError(`${where}: "${name}" must be a positive integer`);
    case "count":
      if (isCount(value)) return value;
      throw new TypeError(
        `${where}: "${name}" must be a non-negative integer`,
      );
    case "boolean":
      if (typeof value === "boolean") return value;
      throw new TypeError(`${where}: "${name}" must be a boolean`);
    case "entries":
      return parseEntries(value, where, budget);
  }
}

function parseEntries(
  value: unknown,
  where: string,
  budget: { entries: number },
): Entry[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${where}: "entries" must be an array`);
  }
  budget.entries -= value.length;
  if (budget.entries < 0) {
    const limit = entriesPerBodyMax;
    throw new TypeError(
      `${where}: "entries" exceeds the body limit of ${limit} entries`,
    );
  }

  const entries: Entry[] = [];
  for (let position = 0; position < value.length; position++) {
    entries.push(
      parseEntry(value[position], `${where}: "entries[${position}]`),
    );
  }
  return entries;
}

function parseEntry(value: unknown, where: string): Entry {
  if (!isRecord(value)) throw new TypeError(`${where}" must be an object`);
  const { index, term, kind, data } = value;
  if (!isId(index)) {
    throw new TypeError(`${where}.index" must be a positive integer`);
  }
  if (!isCount(term)) {
    throw new TypeError(`${where}.term" must be a non-negative integer`);
  }
  if (!entryKinds.has(kind)) {
    throw new TypeError(`${where}.kind" must be 0, 1 or 2`);
  }
  if (typeof data !== "string") {
    throw new TypeError(`${where}.data" must be a string`);
  }
  return { index, term, kind: kind as EntryKind, data };
}

function parseMembers(value: unknown): Member[] {
  const where = "Invalid forward request";
  if (!Array.isArray(value)) {
    throw new TypeError(`${where}: "members" must be an array`);
  }
  if (value.length > membersPerConfigMax) {
    const limit = membersPerConfigMax;
    throw new TypeError(
      `${where}: "members" may list at most ${limit}, got ${value.length}`,
    );
  }

  return value.map((member, position) => {
    const name = `"members[${position}]`;
    if (!isRecord(member)) {
      throw new TypeError(`${where}: ${name}" must be an object`);
    }
    if (!isId(member.id)) {
      throw new TypeError(`${where}: ${name}.id" must be a positive integer`);
    }
    if (typeof member.url !== "string") {
      throw new TypeError(`${where}: ${name}.url" must be a string`);
    }
    return { id: member.id, url: member.url };
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "object") return "an object";
  return String(value);
}
