/**
 * A replicated key-value service: one process per node, an etcd-like HTTP
 * API, and lilraft underneath.
 *
 * ```
 * deno run -A examples/kv.ts --id 1 \
 *   --cluster 1=http://127.0.0.1:7001,2=http://127.0.0.1:7002,3=http://127.0.0.1:7003 \
 *   --dir data/kv-1 [--recover]
 * ```
 *
 * The node listens on the host and port of its own URL in `--cluster` and
 * serves both the peer RPCs (`/raft/*`) and the client API there:
 *
 * - `GET /kv/{key}`: 200 with the value, 404 when absent; linearizable.
 * - `PUT /kv/{key}` (body = value): 200 once committed and applied.
 * - `PUT /kv/{key}?prev={expected}`: compare-and-set; 412 on mismatch.
 * - `DELETE /kv/{key}`: 200, also when absent.
 * - `GET /status`: the node's status as JSON.
 * - 503 with a JSON reason when there is no leader or the outcome is not
 *   known in time; 400 for bad input; 405 for other methods.
 *
 * Writes on a follower are forwarded to the leader. Reads on any node go
 * through `Server.read` (ReadIndex): the leader confirms its leadership
 * with a heartbeat round and hands out its commit index; the node answers
 * once it has applied that far. A follower only fetches the index from
 * the leader and answers from its own copy, which is equally linearizable.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Command,
  Config,
  ConfigChangeError,
  HttpNode,
  type Logger,
  NoLeaderError,
  NotCommittedError,
  Server,
  stderrLogger,
  StoppedError,
  TimedOutError,
} from "../mod.ts";

/** The replicated state: keys to values. */
export type KvMap = Map<string, string>;

/** The longest key accepted, in UTF-8 bytes. */
export const keyBytesMax = 1024;

/** The longest value accepted, in UTF-8 bytes. */
export const valueBytesMax = 1024 * 1024;

/** Exit code of a usage error: bad flag, bad cluster string. */
const usageExitCode = 2;

/** How long a clean shutdown may take before the process exits anyway. */
const shutdownGraceMs = 3000;

const usage = `Usage: deno run -A examples/kv.ts --id ID --cluster CLUSTER \\
         --dir DIR [--recover]

A replicated key-value store: one process per node of a lilraft cluster.

Flags:
  --id ID            This node's id: a positive integer listed in CLUSTER.
  --cluster CLUSTER  Every node as ID=URL, comma-separated, for example
                     1=http://127.0.0.1:7001,2=http://127.0.0.1:7002,3=http://127.0.0.1:7003
                     The node listens on the host and port of its own URL,
                     for peer RPCs and the client API alike.
  --dir DIR          Data directory for the write-ahead log (created when
                     missing; locked while the node runs).
  --recover          Rebuild the map from the write-ahead log on start. The
                     map lives in memory only, so a node whose directory
                     already holds a log always rebuilds it; the flag makes
                     that explicit and silences the warning.
  --join             Join a running cluster instead of founding one: the
                     node waits until a member adds it with POST /config.
  --help             Print this help and exit.

Client API:
  GET    /kv/{key}              200 value | 404 absent (linearizable read)
  PUT    /kv/{key}              200 once committed and applied
  PUT    /kv/{key}?prev={old}   200 swapped | 412 value differs or absent
  DELETE /kv/{key}              200 (also when absent)
  GET    /status                200 node status as JSON
  POST   /config                body ID=URL,... : change the membership to
                                exactly those nodes (joint consensus);
                                200 when done | 409 a change is in progress
                                or a new node could not catch up
  503 no leader / outcome unknown, 400 bad input, 405 other methods.
`;

// ------------------------------------------------------------- commands

/** Sets `key` to `value`. */
export class PutCommand implements Command<KvMap, null> {
  /**
   * @param key The key.
   * @param value The new value.
   */
  constructor(public key: string, public value: string) {}
  /** The registered name. */
  name(): string {
    return "put";
  }
  /** Stores the value. */
  apply(map: KvMap): null {
    map.set(this.key, this.value);
    return null;
  }
}

/** Sets `key` to `value` only if it currently holds `prev`. */
export class CasCommand implements Command<KvMap, boolean> {
  /**
   * @param key The key.
   * @param prev The value the key must hold.
   * @param value The new value.
   */
  constructor(
    public key: string,
    public prev: string,
    public value: string,
  ) {}
  /** The registered name. */
  name(): string {
    return "cas";
  }
  /** Swaps the value; false when the key is absent or holds another. */
  apply(map: KvMap): boolean {
    if (map.get(this.key) !== this.prev) return false;
    map.set(this.key, this.value);
    return true;
  }
}

/** Removes `key`, if present. */
export class DeleteCommand implements Command<KvMap, null> {
  /** @param key The key. */
  constructor(public key: string) {}
  /** The registered name. */
  name(): string {
    return "delete";
  }
  /** Removes the key. */
  apply(map: KvMap): null {
    map.delete(this.key);
    return null;
  }
}

// ------------------------------------------------------- command line

/** What the command line asks for. */
export interface KvOptions {
  /** This node's id. */
  id: number;
  /** Every node of the cluster. */
  nodes: HttpNode[];
  /** The data directory. */
  dir: string;
  /** Whether `--recover` was given. */
  recover: boolean;
  /** Whether `--join` was given. */
  join: boolean;
}

/** A command-line mistake: reported with the usage, exit code 2. */
export class UsageError extends Error {}

/**
 * Parses the command line.
 *
 * @returns The options, or "help" when `--help` was given.
 * @throws {UsageError} on an unknown flag, a missing value, a bad id or a
 *   bad cluster string.
 */
export function parseCommandLine(args: string[]): KvOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        id: { type: "string" },
        cluster: { type: "string" },
        dir: { type: "string" },
        recover: { type: "boolean", default: false },
        join: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  for (const flag of ["id", "cluster", "dir"] as const) {
    if (values[flag] === undefined || values[flag] === "") {
      throw new UsageError(`Missing flag --${flag}`);
    }
  }
  const id = parseId(values.id!, "--id");
  const nodes = parseCluster(values.cluster!);
  if (!nodes.some((node) => node.id === id)) {
    throw new UsageError(
      `Invalid --id ${id}: not in --cluster (ids ${
        nodes.map((node) => node.id).join(", ")
      })`,
    );
  }
  return {
    id,
    nodes,
    dir: values.dir!,
    recover: values.recover!,
    join: values.join!,
  };
}

/**
 * Parses `1=http://host:port,2=...` into nodes.
 *
 * @throws {UsageError} naming the bad part.
 */
export function parseCluster(text: string): HttpNode[] {
  const nodes: HttpNode[] = [];
  for (const part of text.split(",")) {
    const match = /^\s*([^=\s]+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!match) {
      throw new UsageError(
        `Invalid --cluster entry "${part}": expected ID=URL`,
      );
    }
    const id = parseId(match[1]!, "--cluster id");
    const url = parseNodeUrl(match[2]!);
    if (nodes.some((node) => node.id === id)) {
      throw new UsageError(`Invalid --cluster: id ${id} appears twice`);
    }
    if (nodes.some((node) => node.url === url)) {
      throw new UsageError(`Invalid --cluster: url ${url} appears twice`);
    }
    nodes.push(new HttpNode(id, url));
  }
  return nodes;
}

function parseId(text: string, what: string): number {
  const id = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new UsageError(
      `Invalid ${what} "${text}": expected an integer > 0`,
    );
  }
  return id;
}

function parseNodeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`Invalid --cluster url "${text}": not a URL`);
  }
  if (url.protocol !== "http:") {
    throw new UsageError(
      `Invalid --cluster url "${text}": only http:// is supported`,
    );
  }
  if (url.pathname !== "/" || url.search || url.hash || url.username) {
    throw new UsageError(
      `Invalid --cluster url "${text}": expected http://host:port only`,
    );
  }
  return url.origin;
}

/** The host and port a node's URL says to listen on. */
export function listenAddress(url: string): { hostname: string; port: number } {
  const parsed = new URL(url);
  return {
    hostname: parsed.hostname.replace(/^\[|\]$/g, ""),
    port: parsed.port === "" ? 80 : Number(parsed.port),
  };
}

// ------------------------------------------------------------ HTTP API

const jsonHeaders = { "content-type": "application/json" };
const textHeaders = { "content-type": "text/plain; charset=utf-8" };
const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Errors that mean "no answer now": the client may retry. */
const unavailableErrors = [
  NoLeaderError,
  TimedOutError,
  NotCommittedError,
  StoppedError,
];

/** A request the API refuses, with its status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Creates the fetch handler of a node: `/raft/*` goes to the server's
 * peer handler, everything else is the client API.
 */
export function createHandler(
  server: Server<KvMap>,
): (request: Request) => Promise<Response> {
  const peerHandler = server.handler;
  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/raft/")) return await peerHandler(request);
    try {
      return await route(server, request, url);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

function route(
  server: Server<KvMap>,
  request: Request,
  url: URL,
): Promise<Response> | Response {
  const path = url.pathname;
  if (path === "/status") {
    allowMethods(request, ["GET"]);
    return json(200, server.status());
  }
  if (path === "/config") {
    allowMethods(request, ["POST"]);
    return changeConfig(server, request);
  }
  if (path !== "/kv" && !path.startsWith("/kv/")) {
    throw new HttpError(404, `Not found: no route at ${path}`);
  }
  allowMethods(request, ["GET", "PUT", "DELETE"]);
  const key = parseKey(path.slice("/kv/".length));
  switch (request.method) {
    case "GET":
      return getValue(server, key);
    case "PUT":
      return putValue(server, key, request, url);
    default:
      return deleteValue(server, key);
  }
}

async function getValue(
  server: Server<KvMap>,
  key: string,
): Promise<Response> {
  const value = await server.read((map) => map.get(key));
  if (value === undefined) {
    throw new HttpError(404, `Key not found: ${key}`);
  }
  return new Response(value, { headers: textHeaders });
}

async function putValue(
  server: Server<KvMap>,
  key: string,
  request: Request,
  url: URL,
): Promise<Response> {
  const prev = parsePrev(url.search);
  const value = await readValue(request);
  if (prev === undefined) {
    await server.exec(new PutCommand(key, value));
    return new Response(null, { status: 200 });
  }
  const swapped = await server.exec(new CasCommand(key, prev, value));
  if (!swapped) {
    throw new HttpError(
      412,
      `Precondition failed: key ${key} is absent or holds another value`,
    );
  }
  return new Response(null, { status: 200 });
}

/** Changes the membership to the nodes named in the body. */
async function changeConfig(
  server: Server<KvMap>,
  request: Request,
): Promise<Response> {
  let nodes: HttpNode[];
  try {
    nodes = parseCluster(await readValue(request));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new HttpError(400, `Bad request: ${error.message}`);
  }
  try {
    await server.setConfig(...nodes);
  } catch (error) {
    if (error instanceof TypeError) {
      throw new HttpError(400, `Bad request: ${error.message}`);
    }
    if (!(error instanceof ConfigChangeError)) throw error;
    throw new HttpError(409, `Conflict: ${error.message}`);
  }
  return json(200, server.status());
}

async function deleteValue(
  server: Server<KvMap>,
  key: string,
): Promise<Response> {
  await server.exec(new DeleteCommand(key));
  return new Response(null, { status: 200 });
}

function allowMethods(request: Request, methods: string[]): void {
  if (methods.includes(request.method)) return;
  const allow = methods.join(", ");
  throw new HttpError(
    405,
    `Method not allowed: ${request.method}; use ${allow}`,
    { allow },
  );
}

/** Decodes the key from the path; strict UTF-8, 1..1024 bytes. */
function parseKey(encoded: string): string {
  const key = decodeComponent(encoded, "key");
  if (key === "") throw new HttpError(400, "Bad request: the key is empty");
  const bytes = encoder.encode(key).byteLength;
  if (bytes > keyBytesMax) {
    throw new HttpError(
      400,
      `Bad request: the key is ${bytes} bytes, over ${keyBytesMax}`,
    );
  }
  return key;
}

/**
 * The `prev` query parameter, or undefined when there is none. Decoded
 * like form data (`+` is a space), but strictly: bad UTF-8 is a 400.
 */
function parsePrev(search: string): string | undefined {
  let prev: string | undefined;
  for (const pair of search.slice(1).split("&")) {
    const equals = pair.indexOf("=");
    const name = equals < 0 ? pair : pair.slice(0, equals);
    if (name !== "prev") continue;
    const raw = equals < 0 ? "" : pair.slice(equals + 1);
    if (prev !== undefined) {
      throw new HttpError(400, "Bad request: prev is given twice");
    }
    prev = decodeComponent(raw.replaceAll("+", " "), "prev");
  }
  if (prev !== undefined && encoder.encode(prev).byteLength > valueBytesMax) {
    throw new HttpError(400, `Bad request: prev is over ${valueBytesMax} B`);
  }
  return prev;
}

function decodeComponent(encoded: string, what: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new HttpError(
      400,
      `Bad request: the ${what} is not valid percent-encoded UTF-8`,
    );
  }
}

/** Reads the body as strict UTF-8 of at most `valueBytesMax` bytes. */
async function readValue(request: Request): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > valueBytesMax) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (request.body === null) return "";
  const bytes = request.headers.has("content-length")
    ? await request.bytes()
    : await readLimited(request.body);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new HttpError(400, "Bad request: the value is not valid UTF-8");
  }
}

/** Reads a body without a declared length, up to `valueBytesMax`. */
async function readLimited(
  body: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > valueBytesMax) throw tooLarge();
    chunks.push(chunk);
  }
  return concat(chunks, size);
}

function tooLarge(): HttpError {
  return new HttpError(
    400,
    `Bad request: the value is over ${valueBytesMax} bytes`,
  );
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

function errorResponse(error: unknown): Response {
  if (error instanceof HttpError) {
    const response = json(error.status, { error: error.message });
    for (const [name, value] of Object.entries(error.headers)) {
      response.headers.set(name, value);
    }
    return response;
  }
  const reason = error instanceof Error ? error.message : String(error);
  if (unavailableErrors.some((kind) => error instanceof kind)) {
    const name = (error as Error).name;
    return json(503, { error: `Unavailable: ${reason}`, kind: name });
  }
  return json(500, { error: `Internal error: ${reason}` });
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: jsonHeaders });
}

// ---------------------------------------------------------------- main

/** Whether `dir` already holds a write-ahead log segment. */
async function hasLog(dir: string): Promise<boolean> {
  try {
    for await (const item of Deno.readDir(dir)) {
      if (/^wal-\d+\.log$/.test(item.name)) return true;
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  return false;
}

/** Creates the server and the listener, and runs until a signal. */
async function run(options: KvOptions): Promise<void> {
  const logger = stderrLogger(`node ${options.id}`);
  const own = options.nodes.find((node) => node.id === options.id)!;
  const server = new Server<KvMap>(
    options.id,
    new Map(),
    new Config(...options.nodes),
    options.dir,
    { logger, join: options.join },
  );
  server.registerCommand(PutCommand);
  server.registerCommand(CasCommand);
  server.registerCommand(DeleteCommand);

  // The map lives in memory only: replaying the log is the only way to
  // get it back, so an existing log is always replayed.
  const existing = await hasLog(options.dir);
  if (existing && !options.recover) {
    logger.warn("data directory holds a log: rebuilding the map from it", {
      dir: options.dir,
    });
  }
  const address = listenAddress(own.url);
  const http = Deno.serve({
    ...address,
    onListen: () => logger.info("listening", { url: own.url }),
  }, createHandler(server));

  await server.start({ recover: true });
  const status = server.status();
  logger.info("started", {
    id: options.id,
    recovered: existing,
    appliedIndex: status.appliedIndex,
    keys: server.context.size,
  });
  await waitForSignal(logger);
  await shutdown(server, http, logger);
}

function waitForSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => {
        logger.info("shutting down", { signal });
        resolve();
      });
    }
  });
}

async function shutdown(
  server: Server<KvMap>,
  http: Deno.HttpServer,
  logger: Logger,
): Promise<void> {
  const timer = setTimeout(() => {
    logger.warn("shutdown took too long: exiting", {});
    Deno.exit(1);
  }, shutdownGraceMs);
  // Stopping the server first answers waiting requests with 503.
  await server.stop();
  await http.shutdown();
  clearTimeout(timer);
  Deno.exit(0);
}

if (import.meta.main) {
  let options: KvOptions | "help";
  try {
    options = parseCommandLine(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`kv: ${error.message}\n\n${usage}`);
    Deno.exit(usageExitCode);
  }
  if (options === "help") {
    console.log(usage);
    Deno.exit(0);
  }
  try {
    await run(options);
  } catch (error) {
    console.error(`kv: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
