/**
 * lilraft: Raft consensus for Deno.
 *
 * Define commands with `name()` and `apply(context)`, create a
 * {@linkcode Server} per node with a {@linkcode Config} of
 * {@linkcode HttpNode}s, start it, and call `exec(command)`: the command is
 * committed by a majority and applied to every node's context in the same
 * order.
 *
 * @example A three-node cluster, node 1
 * ```ts ignore
 * import { type Command, Config, HttpNode, Server } from "@lilraft/lilraft";
 *
 * class AppendCommand implements Command<number[], number> {
 *   constructor(public val: number) {}
 *   name(): string {
 *     return "append";
 *   }
 *   apply(context: number[]): number {
 *     context.push(this.val);
 *     return context.length;
 *   }
 * }
 *
 * const config = new Config(
 *   new HttpNode(1, "http://127.0.0.1:8787"),
 *   new HttpNode(2, "http://127.0.0.1:8788"),
 *   new HttpNode(3, "http://127.0.0.1:8789"),
 * );
 * const server = new Server(1, [] as number[], config, "server1/");
 * server.registerCommand(AppendCommand);
 * server.setHttpTransport(8787);
 * await server.start({ recover: false });
 * const length = await server.exec(new AppendCommand(2046));
 * await server.stop();
 * ```
 *
 * @module
 */

// The server and how to describe a cluster.
export { Server } from "./lib/server.ts";
export type {
  MemberStatus,
  ServerOptions,
  ServerStatus,
  StartOptions,
} from "./lib/server_options.ts";
export { Config, HttpNode } from "./lib/config.ts";
export type { Command, CommandClass } from "./lib/command.ts";

// Errors callers catch by class.
export {
  ConfigChangeError,
  CorruptLogError,
  DataPathLockedError,
  LilraftError,
  NoLeaderError,
  NotCommittedError,
  StoppedError,
  TimedOutError,
} from "./lib/errors.ts";

// Logging.
export {
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
  stderrLogger,
} from "./lib/logger.ts";

// Pluggable parts: storage, transport, clock.
export type {
  SaveBatch,
  Storage,
  StorageStats,
  StoredState,
} from "./lib/storage/storage.ts";
export { FileStorage } from "./lib/storage/file.ts";
export { MemoryStorage } from "./lib/storage/memory.ts";
export type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "./lib/transport/transport.ts";
export { HttpTransport } from "./lib/transport/http.ts";
export type { Clock } from "./lib/clock.ts";
export type { Role } from "./lib/core/raft.ts";
export {
  type AppendRequest,
  type AppendResponse,
  type ConfigData,
  type Entry,
  EntryKind,
  type HardState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Member,
  type Message,
  type MessageBase,
  type NodeId,
  type TimeoutNowRequest,
  type VoteRequest,
  type VoteResponse,
} from "./lib/core/types.ts";
