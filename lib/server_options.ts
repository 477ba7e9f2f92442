/**
 * The options of a {@linkcode Server}, their defaults and their validation,
 * and the shapes {@linkcode Server.status} reports.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Role } from "./core/raft.ts";
import type { NodeId } from "./core/types.ts";
import type { Logger } from "./logger.ts";
import type { Storage } from "./storage/storage.ts";
import type { Transport } from "./transport/transport.ts";

/** Tuning and dependencies of a {@linkcode Server}; all optional. */
export interface ServerOptions {
  /** Where role, membership and recovery events go. Default: silent. */
  logger?: Logger;
  /** Minimum election timeout; the actual one is in [t, 2t). Default 150. */
  electionTimeoutMs?: number;
  /** Interval between leader heartbeats. Default 50. */
  heartbeatIntervalMs?: number;
  /** Resolution of the Raft clock. Default 10. */
  tickMs?: number;
  /** How long `exec`, `read` and forwarding may take. Default 5000. */
  execTimeoutMs?: number;
  /** How long a new member may take to catch up. Default 10000. */
  catchUpTimeoutMs?: number;
  /**
   * Join an existing cluster instead of founding one: the node writes no
   * initial configuration and never campaigns until a leader adds it with
   * {@linkcode Server.setConfig}. Default false.
   */
  join?: boolean;
  /** Storage to use instead of the write-ahead log under the data path. */
  storage?: Storage;
  /** Transport to use instead of HTTP. */
  transport?: Transport;
  /** Clock to use instead of the system clock. */
  clock?: Clock;
  /** Random source in [0, 1) for election timeouts. Default Math.random. */
  random?: () => number;
  /** AppendEntries requests in flight per follower. Default 32. */
  inflightMax?: number;
  /** Entries per AppendEntries request. Default 512. */
  entriesPerAppendMax?: number;
  /**
   * Largest encoded command, in characters; `exec` of a larger one throws
   * `RangeError`. Default 8 MiB, well under the transport's body limit.
   */
  entryBytesMax?: number;
}

/** Options of {@linkcode Server.start}. */
export interface StartOptions {
  /**
   * Rebuild the context by applying every committed entry in the log
   * before `start` resolves. When false, the context is taken as it is and
   * entries applied before the last clean stop are not applied again.
   */
  recover?: boolean;
}

/** A member as {@linkcode ServerStatus} reports it. */
export interface MemberStatus {
  /** The member's id. */
  id: NodeId;
  /** The member's URL. */
  url: string;
}

/** A snapshot of a server's state, for operators and tests. */
export interface ServerStatus {
  /** This node's id. */
  id: NodeId;
  /** The Raft role, or "stopped" / "failed". */
  role: Role | "stopped" | "failed";
  /** The current term. */
  term: number;
  /** The leader as far as known, or null. */
  leader: NodeId | null;
  /** Highest committed index known here. */
  commitIndex: number;
  /** Highest index applied to the context. */
  appliedIndex: number;
  /** Index of the last log entry. */
  lastLogIndex: number;
  /** Voters of the configuration in force (the new set while joint). */
  members: MemberStatus[];
  /** Voters of the outgoing set during a joint change, else empty. */
  oldMembers: MemberStatus[];
  /** Why the server failed, when it did. */
  failure: string | null;
}

/** The defaults of the numeric {@linkcode ServerOptions}. */
export const serverDefaults = {
  electionTimeoutMs: 150,
  heartbeatIntervalMs: 50,
  tickMs: 10,
  execTimeoutMs: 5000,
  catchUpTimeoutMs: 10000,
  entryBytesMax: 8 * 1024 * 1024,
};

/** {@linkcode ServerOptions} with every default filled in. */
export type ResolvedOptions = ServerOptions & typeof serverDefaults;

/**
 * Fills in the defaults of `options` and checks the timing.
 *
 * @param options The options a server was created with.
 * @returns The options with every default filled in.
 * @throws {RangeError} when a number is not positive, or the heartbeat
 *   interval, election timeout and tick do not fit together.
 */
export function resolveOptions(options: ServerOptions): ResolvedOptions {
  const resolved = { ...serverDefaults, ...options };
  checkTiming(resolved);
  return resolved;
}

/** Checks that every number is positive and that the timing fits. */
function checkTiming(options: typeof serverDefaults): void {
  const { tickMs, electionTimeoutMs, heartbeatIntervalMs } = options;
  const names = Object.keys(serverDefaults) as (keyof typeof serverDefaults)[];
  for (const name of names) {
    const value = options[name];
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`Invalid option ${name}: must be positive`);
    }
  }
  if (heartbeatIntervalMs >= electionTimeoutMs) {
    throw new RangeError(
      "Invalid timing: heartbeatIntervalMs must be below electionTimeoutMs",
    );
  }
  if (electionTimeoutMs < 2 * tickMs) {
    throw new RangeError(
      "Invalid timing: electionTimeoutMs must be at least two ticks",
    );
  }
}
