/**
 * A {@linkcode Transport} over HTTP/1.1 with JSON bodies.
 *
 * Raft messages travel as `POST /raft/message` with a body
 * `{ "messages": Message[] }`, batched per peer with one request in flight
 * per peer. Forwarded client requests travel as `POST /raft/forward` with a
 * {@linkcode ForwardRequest} body and a {@linkcode ForwardReply} answer.
 *
 * @module
 */

import type { AppendRequest, Member, Message, NodeId } from "../core/types.ts";
import { type Logger, silentLogger } from "../logger.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "./transport.ts";
import {
  entriesPerBodyMax,
  type MessageBody,
  parseForwardReply,
  parseForwardRequest,
  parseMessageBody,
} from "./validate.ts";

/** The path that receives batches of Raft messages. */
export const messagePath = "/raft/message";

/** The path that serves forwarded client requests. */
export const forwardPath = "/raft/forward";

/** The prefix of every path that {@linkcode HttpTransport.handler} answers. */
export const raftPathPrefix = "/raft/";

/** The most messages one outgoing request carries. */
export const messagesPerRequestMax = 1024;

/** Outgoing batches stop growing past this estimated size. */
const requestBytesTarget = 1024 * 1024;

/** Options of {@linkcode HttpTransport}. */
export interface HttpTransportOptions {
  /** Where diagnostics go; silent by default. */
  logger?: Logger;
  /** The largest request body accepted or sent; 64 MiB by default. */
  bodyBytesMax?: number;
  /** How long one message request may take; 2000 ms by default. */
  requestTimeoutMs?: number;
  /** How many messages may wait per peer; the oldest go first. 4096. */
  queueMessagesMax?: number;
}

interface HeldReply {
  messages: Message[];
  finish: () => void;
}

interface Peer {
  id: NodeId;
  url: string;
  queue: Message[];
  sending: boolean;
  reachable: boolean;
}

/** A failed request whose reason is already a sentence for the log. */
class RequestError extends Error {}

const jsonHeaders = { "content-type": "application/json" };

/** The request header carrying the sender's cluster id. */
export const clusterHeader = "lilraft-cluster";

/**
 * The request header by which a sender of AppendEntries or heartbeats asks
 * the receiver to hold the request open and carry its answers back in the
 * response body: one hop instead of a request of its own.
 */
export const replyHeader = "lilraft-reply";

/** How long a receiver holds a request open for its answers. */
const replyWaitMs = 50;

/** The request header carrying the sender's own base URL. */
export const senderHeader = "lilraft-sender";

/**
 * Moves Raft messages between nodes over HTTP.
 *
 * Incoming requests are served by {@linkcode HttpTransport.handler}, either
 * through {@linkcode HttpTransport.listen} or mounted in an application's own
 * server. Outgoing messages are queued per peer and posted in batches.
 *
 * @example Wire a transport to a node
 * ```ts ignore
 * import { HttpTransport } from "./http.ts";
 * const transport = new HttpTransport({ requestTimeoutMs: 1000 });
 * await transport.start(1, handlers);
 * transport.setPeers([{ id: 2, url: "http://127.0.0.1:8002" }]);
 * await transport.listen(8001);
 * ```
 */
export class HttpTransport implements Transport {
  #logger: Logger;
  #bodyBytesMax: number;
  #requestTimeoutMs: number;
  #queueMessagesMax: number;
  #self: NodeId = 0;
  #handlers: TransportHandlers | undefined;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #client: Deno.HttpClient | undefined;
  // Forwarded requests wait for commits; on their own connections they can
  // never hold up the Raft messages that those commits depend on.
  #forwardClient: Deno.HttpClient | undefined;
  #abort = new AbortController();
  #peers = new Map<NodeId, Peer>();
  #learned = new Map<NodeId, Peer>();
  #held = new Map<NodeId, HeldReply>();
  #pending = new Set<Promise<unknown>>();
  #stopping: Promise<void> | undefined;
  #dropped = 0;

  /**
   * Creates the transport; it sends and serves once started.
   *
   * @param options Limits and the logger; see {@linkcode HttpTransportOptions}.
   * @throws {RangeError} when a limit is not a positive integer.
   */
  constructor(options: HttpTransportOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#bodyBytesMax = positive(options, "bodyBytesMax", 64 * 1024 * 1024);
    this.#requestTimeoutMs = positive(options, "requestTimeoutMs", 2000);
    this.#queueMessagesMax = positive(options, "queueMessagesMax", 4096);
  }

  /**
   * The port the server listens on; useful after `listen(0)`.
   *
   * @throws {Error} when the transport is not listening.
   */
  get port(): number {
    if (this.#server === undefined) {
      throw new Error("Cannot read the port: transport is not listening");
    }
    return this.#server.addr.port;
  }

  /** How many queued messages were dropped because a queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Answers Raft requests: `POST /raft/message` and `POST /raft/forward`.
   *
   * Bound, so it can be passed to `Deno.serve` or called from an
   * application's router. It answers only paths under `/raft/`; every other
   * path gets 404, so an application that mounts it should route only
   * `/raft/*` to it.
   *
   * Statuses: 204 messages delivered, 200 forward reply, 400 malformed body,
   * 403 sender not accepted, 404 unknown path, 405 wrong method, 413 body
   * over `bodyBytesMax`, 503 transport not started. Error bodies are JSON
   * `{ "error": reason }`.
   *
   * @param request The incoming HTTP request.
   * @returns The response; never rejects.
   */
  readonly handler = (request: Request): Promise<Response> =>
    this.#serve(request);

  /**
   * Starts handling messages for node `self`.
   *
   * @throws {RangeError} when `self` is not a positive integer.
   * @throws {Error} when the transport is already started.
   */
  start(self: NodeId, handlers: TransportHandlers): Promise<void> {
    if (!Number.isSafeInteger(self) || self <= 0) {
      const reason = `Cannot start transport: invalid node id ${self}`;
      return Promise.reject(new RangeError(reason));
    }
    if (this.#handlers !== undefined) {
      const reason =
        `Cannot start transport: already started as node ${this.#self}`;
      return Promise.reject(new Error(reason));
    }

    this.#self = self;
    this.#abort = new AbortController();
    this.#client = Deno.createHttpClient({});
    this.#forwardClient = Deno.createHttpClient({});
    this.#handlers = handlers;
    return Promise.resolve();
  }

  /**
   * Serves {@linkcode HttpTransport.handler} on `hostname:port`, silently.
   *
   * @param port The port; 0 picks a free one, see
   * {@linkcode HttpTransport.port}.
   * @param hostname The address to bind; loopback by default.
   * @throws {Error} when already listening or the address is taken.
   */
  listen(port: number, hostname = "127.0.0.1"): Promise<void> {
    if (this.#server !== undefined) {
      const reason =
        `Cannot listen: already listening on port ${this.#server.addr.port}`;
      return Promise.reject(new Error(reason));
    }
    try {
      const options = { port, hostname, onListen() {} };
      this.#server = Deno.serve(options, this.handler);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  /**
   * Replaces the address book. A member whose URL changed starts afresh;
   * messages queued for removed members are dropped.
   */
  setPeers(members: Member[]): void {
    const peers = new Map<NodeId, Peer>();
    for (const { id, url } of members) {
      const base = url.replace(/\/+$/, "");
      if (!URL.canParse(base)) {
        this.#logger.warn("ignored a member with an invalid url", { id, url });
        continue;
      }
      const known = this.#peers.get(id);
      peers.set(id, known?.url === base ? known : newPeer(id, base));
    }
    for (const [id, peer] of this.#learned) {
      if (peers.has(id)) this.#learned.delete(id);
      else peers.set(id, peer);
    }
    this.#peers = peers;
  }

  /** Queues messages per peer and posts them in batches. Never throws. */
  send(messages: Message[]): void {
    if (this.#handlers === undefined) return;

    let unknown = 0;
    const replies = new Set<HeldReply>();
    for (const message of messages) {
      const held = this.#held.get(message.to);
      const peer = this.#peers.get(message.to);
      if (held !== undefined) {
        held.messages.push(message);
        replies.add(held);
      } else if (peer === undefined) unknown++;
      else peer.queue.push(message);
    }
    for (const held of replies) held.finish();
    if (unknown > 0) {
      this.#logger.debug("dropped messages to unknown peers", { unknown });
    }

    for (const peer of this.#peers.values()) {
      this.#trim(peer);
      this.#pump(peer);
    }
  }

  /**
   * Posts a forwarded request to node `to` and returns its reply.
   *
   * @throws {Error} naming the node and URL when the transport is stopped,
   * the node is unknown or unreachable, does not answer within `timeoutMs`,
   * answers with an error status or with a malformed reply.
   */
  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    const pending = this.#forward(to, request, timeoutMs);
    return this.#track(pending);
  }

  /**
   * Stops serving, aborts requests in flight and drops every queue.
   * The address book is kept. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#handlers = undefined;
    this.#abort.abort();
    for (const peer of this.#peers.values()) peer.queue = [];
    for (const held of [...this.#held.values()]) held.finish();

    const server = this.#server;
    this.#server = undefined;
    await server?.shutdown();
    await Promise.allSettled(this.#pending);

    this.#client?.close();
    this.#client = undefined;
    this.#forwardClient?.close();
    this.#forwardClient = undefined;
    this.#stopping = undefined;
  }

  async #serve(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path !== messagePath && path !== forwardPath) {
      return failure(404, `Not found: no Raft route at ${path}`);
    }
    if (request.method !== "POST") {
      const reason = `Method not allowed: ${path} accepts POST only`;
      const response = failure(405, reason);
      response.headers.set("allow", "POST");
      return response;
    }
    const handlers = this.#handlers;
    if (handlers === undefined) {
      return failure(503, "Service unavailable: transport is not started");
    }

    let body: MessageBody | ForwardRequest;
    try {
      const json = await readJson(request, this.#bodyBytesMax);
      if (json instanceof Response) return json;
      body = path === messagePath
        ? this.#parseMessages(json)
        : parseForwardRequest(json);
    } catch (error) {
      return failure(400, text(error));
    }
    const cluster = request.headers.get(clusterHeader) ?? undefined;
    return await this.#dispatch(body, handlers, cluster, request.headers);
  }

  /**
   * Waits until this node sends something to `from`, or `replyWaitMs`
   * passes, and answers with those messages (200) or nothing (204).
   */
  #holdReply(from: NodeId): Promise<Response> {
    this.#held.get(from)?.finish();
    const { promise, resolve } = Promise.withResolvers<Message[]>();
    const held: HeldReply = {
      messages: [],
      finish: () => {
        clearTimeout(timer);
        if (this.#held.get(from) === held) this.#held.delete(from);
        resolve(held.messages);
      },
    };
    const timer = setTimeout(held.finish, replyWaitMs);
    this.#held.set(from, held);
    return promise.then((messages) =>
      messages.length === 0
        ? new Response(null, { status: 204 })
        : new Response(JSON.stringify({ messages }), { headers: jsonHeaders })
    );
  }

  /** Remembers where an accepted sender outside the address book is. */
  #learn(id: NodeId, url: string | null): void {
    if (url === null || this.#peers.has(id)) return;
    const base = url.replace(/\/+$/, "");
    if (!URL.canParse(base)) return;
    const peer = newPeer(id, base);
    this.#learned.set(id, peer);
    this.#peers.set(id, peer);
  }

  /** Hands a validated body to the handlers; a throw there is a bug. */
  async #dispatch(
    body: MessageBody | ForwardRequest,
    handlers: TransportHandlers,
    cluster: string | undefined,
    headers: Headers,
  ): Promise<Response> {
    try {
      if ("kind" in body) {
        const reply = await handlers.forward(body);
        return new Response(JSON.stringify(reply), { headers: jsonHeaders });
      }
      if (!handlers.accepts(body.from, cluster)) {
        const reason = `Forbidden: messages from node ${body.from} are refused`;
        return failure(403, reason);
      }
      this.#learn(body.from, headers.get(senderHeader));
      handlers.receive(body.messages);
      if (headers.get(replyHeader) !== "wait") {
        return new Response(null, { status: 204 });
      }
      return await this.#holdReply(body.from);
    } catch (error) {
      this.#logger.error("handler failed", { error: text(error) });
      return failure(500, `Internal error: ${text(error)}`);
    }
  }

  #parseMessages(value: unknown): MessageBody {
    const body = parseMessageBody(value);
    const messages = body.messages;
    for (let position = 0; position < messages.length; position++) {
      const to = messages[position]!.to;
      if (to === this.#self) continue;
      const reason = `"to" is ${to} but this node is ${this.#self}`;
      throw new TypeError(`Invalid message at [${position}]: ${reason}`);
    }
    return body;
  }

  #trim(peer: Peer): void {
    const excess = peer.queue.length - this.#queueMessagesMax;
    if (excess <= 0) return;

    peer.queue.splice(0, excess);
    this.#dropped += excess;
    this.#logger.debug("dropped the oldest queued messages", {
      id: peer.id,
      count: excess,
    });
  }

  #pump(peer: Peer): void {
    if (peer.sending || peer.queue.length === 0) return;
    if (this.#handlers === undefined || this.#peers.get(peer.id) !== peer) {
      peer.queue = [];
      return;
    }

    peer.sending = true;
    const batch = mergeAppends(takeBatch(peer.queue));
    const done = () => {
      peer.sending = false;
      this.#pump(peer);
    };
    this.#track(this.#post(peer, batch)).then(done, (error) => {
      this.#logger.error("failed to post messages", { error: text(error) });
      done();
    });
  }

  async #post(peer: Peer, batch: Message[]): Promise<void> {
    const body = JSON.stringify({ messages: batch });
    if (!fits(body, this.#bodyBytesMax)) {
      this.#logger.warn("dropped a batch over the body limit", {
        id: peer.id,
        messages: batch.length,
        bodyBytesMax: this.#bodyBytesMax,
      });
      return;
    }

    const stopped = this.#abort.signal;
    const headers = this.#senderHeaders(awaitsReply(batch));
    let reply: unknown;
    try {
      reply = await this.#postJson(
        peer.url + messagePath,
        body,
        this.#requestTimeoutMs,
        this.#client,
        headers,
      );
      this.#markReachable(peer);
    } catch (error) {
      if (stopped.aborted || this.#handlers === undefined) return;
      this.#markUnreachable(peer, failureReason(error, this.#requestTimeoutMs));
      this.#handlers.unreachable(peer.id);
      return;
    }
    if (reply !== undefined) this.#receiveReply(peer, reply);
  }

  /** Delivers the answers a peer carried back in a response body. */
  #receiveReply(peer: Peer, reply: unknown): void {
    const handlers = this.#handlers;
    if (handlers === undefined) return;
    try {
      const body = this.#parseMessages(reply);
      const cluster = handlers.clusterId?.();
      if (body.from !== peer.id || !handlers.accepts(body.from, cluster)) {
        throw new TypeError(`reply names node ${body.from}`);
      }
      handlers.receive(body.messages);
    } catch (error) {
      this.#logger.warn("dropped a malformed reply", {
        id: peer.id,
        error: text(error),
      });
    }
  }

  async #forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    const peer = this.#peers.get(to);
    if (this.#handlers === undefined) {
      throw new Error(`Cannot forward to node ${to}: transport is not started`);
    }
    if (peer === undefined) {
      throw new Error(`Cannot forward to node ${to}: node has no known url`);
    }

    const url = peer.url + forwardPath;
    try {
      const reply = await this.#postJson(
        url,
        JSON.stringify(request),
        timeoutMs,
        this.#forwardClient,
      );
      return parseForwardReply(reply);
    } catch (error) {
      const reason = failureReason(error, timeoutMs);
      throw new Error(`Cannot forward to node ${to} at ${url}: ${reason}`, {
        cause: error,
      });
    }
  }

  /** Posts `body`; returns the parsed reply, or undefined for 204. */
  async #postJson(
    url: string,
    body: string,
    timeoutMs: number,
    client = this.#client,
    extraHeaders?: Record<string, string>,
  ): Promise<unknown> {
    const response = await fetch(url, {
      method: "POST",
      headers: extraHeaders ? { ...jsonHeaders, ...extraHeaders } : jsonHeaders,
      body,
      signal: AbortSignal.any([
        this.#abort.signal,
        AbortSignal.timeout(timeoutMs),
      ]),
      ...(client && { client }),
    });
    if (!response.ok) {
      const reason = await responseReason(response);
      throw new RequestError(`status ${response.status}: ${reason}`);
    }
    if (response.status === 204) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json();
  }

  #senderHeaders(wait = false): Record<string, string> | undefined {
    const cluster = this.#handlers?.clusterId?.();
    const address = this.#handlers?.address?.();
    if (!cluster && !address && !wait) return undefined;
    const headers: Record<string, string> = {};
    if (wait) headers[replyHeader] = "wait";
    if (cluster) headers[clusterHeader] = cluster;
    if (address) headers[senderHeader] = address;
    return headers;
  }

  #markReachable(peer: Peer): void {
    if (peer.reachable) return;
    peer.reachable = true;
    this.#logger.info("peer reachable again", { id: peer.id, url: peer.url });
  }

  #markUnreachable(peer: Peer, reason: string): void {
    if (!peer.reachable) return;
    peer.reachable = false;
    this.#logger.warn("peer unreachable", {
      id: peer.id,
      url: peer.url,
      reason,
    });
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }
}

function positive(
  options: HttpTransportOptions,
  name: "bodyBytesMax" | "requestTimeoutMs" | "queueMessagesMax",
  fallback: number,
): number {
  const value = options[name] ?? fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Invalid option: "${name}" must be a positive integer, got ${value}`,
    );
  }
  return value;
}

function newPeer(id: NodeId, url: string): Peer {
  return { id, url, queue: [], sending: false, reachable: true };
}

/** Takes the next batch: bounded in messages, entries and estimated bytes. */
function takeBatch(queue: Message[]): Message[] {
  let count = 0;
  let bytes = 0;
  let entries = 0;
  while (count < queue.length && count < messagesPerRequestMax) {
    const message = queue[count]!;
    const size = estimateBytes(message);
    const carried = message.type === "append" ? message.entries.length : 0;
    const full = bytes + size > requestBytesTarget ||
      entries + carried > entriesPerBodyMax;
    if (count > 0 && full) break;

    bytes += size;
    entries += carried;
    count++;
  }
  return queue.splice(0, count);
}

/**
 * Joins runs of AppendEntries that continue one another into one request
 * each: the follower stores the same entries and answers once instead of
 * once per proposal. Only adjacent messages of the same term are joined, so
 * the order of everything else is kept.
 */
function mergeAppends(batch: Message[]): Message[] {
  const merged: Message[] = [];
  for (const message of batch) {
    const previous = merged.at(-1);
    if (
      message.type === "append" && previous?.type === "append" &&
      continues(previous, message)
    ) {
      merged[merged.length - 1] = {
        ...previous,
        entries: previous.entries.concat(message.entries),
        commit: Math.max(previous.commit, message.commit),
      };
    } else {
      merged.push(message);
    }
  }
  return merged;
}

/** Whether `next` starts right where `first` ends, in the same term. */
function continues(first: AppendRequest, next: AppendRequest): boolean {
  const lastIndex = first.prevIndex + first.entries.length;
  const lastTerm = first.entries.at(-1)?.term ?? first.prevTerm;
  return next.from === first.from && next.to === first.to &&
    next.term === first.term && next.prevIndex === lastIndex &&
    next.prevTerm === lastTerm;
}

function estimateBytes(message: Message): number {
  let bytes = 160;
  if (message.type !== "append") return bytes;
  for (const entry of message.entries) bytes += 48 + entry.data.length;
  return bytes;
}

/** Whether `body` is at most `limit` UTF-8 bytes; encodes only if unsure. */
function fits(body: string, limit: number): boolean {
  if (body.length * 3 <= limit) return true;
  if (body.length > limit) return false;
  return new TextEncoder().encode(body).byteLength <= limit;
}

/**
 * Reads and parses a JSON request body; a 413 response when it is too large.
 *
 * @throws {TypeError} when the body cannot be read or is not JSON.
 */
async function readJson(
  request: Request,
  limit: number,
): Promise<unknown> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readBody(request, limit);
  } catch (error) {
    throw new TypeError(`Cannot read body: ${text(error)}`);
  }
  if (bytes === undefined) {
    return failure(413, `Payload too large: the limit is ${limit} bytes`);
  }

  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new TypeError(`Malformed JSON: ${text(error)}`);
  }
}

/**
 * Reads a request body of at most `limit` bytes, whatever Content-Length
 * claims; returns undefined when it is larger.
 */
async function readBody(
  request: Request,
  limit: number,
): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get("content-length"));
  if (declared > limit) {
    await request.body?.cancel().catch(() => {});
    return undefined;
  }
  if (request.body === null) return new Uint8Array();

  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return concat(chunks, size);
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function failure(status: number, error: string): Response {
  return new Response(JSON.stringify({ error }), {
    status,
    headers: jsonHeaders,
  });
}

/** The `error` of a JSON error body, or the start of the body's text. */
async function responseReason(response: Response): Promise<string> {
  const body = (await response.text()).slice(0, 500);
  try {
    const { error } = JSON.parse(body);
    if (typeof error === "string") return error;
  } catch {
    // Not one of our error bodies: show its text.
  }
  return body || response.statusText;
}

/** Whether a batch carries leader traffic that is answered in the body. */
function awaitsReply(batch: Message[]): boolean {
  return batch.some((message) =>
    message.type === "append" || message.type === "heartbeat"
  );
}

function failureReason(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `no answer within ${timeoutMs} ms`;
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    return "transport stopped";
  }
  return text(error);
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
