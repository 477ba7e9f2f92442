/**
 * A node of the simulated cluster: its slot, which outlives crashes, and
 * the incarnation that runs in it.
 *
 * @module
 */

import { type Config, HttpNode } from "../config.ts";
import type { NodeId } from "../core/types.ts";
import type { Server } from "../server.ts";
import type { MemoryStorage } from "../storage/memory.ts";
import type { Transport } from "../transport/transport.ts";
import type { DurableState, FencedStorage } from "./_storage.ts";
import type { NodeClock } from "./_time.ts";

/** A running (or starting) server and everything that dies with it. */
export interface Incarnation<C> {
  server: Server<C>;
  clock: NodeClock;
  storage: FencedStorage;
  transport: Transport;
  running: boolean;
  stopped: boolean;
  lastTerm: number;
  lastCommit: number;
  lastApplied: number;
  verified: number[];
  checks: number;
}

/** A node id with its durable storage, across incarnations. */
export interface Slot<C> {
  id: NodeId;
  join: boolean;
  config: Config;
  storage: MemoryStorage;
  durable: DurableState;
  diskSlowMs: number;
  incarnation: Incarnation<C> | null;
  decommissioned: boolean;
}

function nodeUrl(id: NodeId): string {
  return `http://node-${id}.sim`;
}

/** The cluster member `id`, at its simulated address. */
export function member(id: NodeId): HttpNode {
  return new HttpNode(id, nodeUrl(id));
}
