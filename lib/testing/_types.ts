/**
 * The public types of the simulator, re-exported by `../testing.ts`.
 *
 * @module
 */

import type { Command, CommandClass } from "../command.ts";
import type { NodeId } from "../core/types.ts";

/** The faults a simulation may inject; see {@linkcode allFaults}. */
export type Fault =
  | "network"
  | "partition"
  | "crash"
  | "disk"
  | "membership"
  | "handover";

/** Every fault: message loss, delay, duplication and reordering;
 * symmetric and one-way partitions; crashes and restarts; slow disks;
 * membership changes; leadership hand-overs. */
export const allFaults: readonly Fault[] = [
  "network",
  "partition",
  "crash",
  "disk",
  "membership",
  "handover",
];

/**
 * One client operation: a command through `exec` (a write) or a query
 * through `read`. `input` is what the {@linkcode Model} sees; `key`
 * partitions the history for the linearizability check (operations on
 * different keys must not affect each other in the model).
 */
export type Operation<C> =
  | {
    kind: "exec";
    key?: string;
    input: unknown;
    command: Command<C, unknown>;
  }
  | {
    kind: "read";
    key?: string;
    input: unknown;
    query: (context: C) => unknown;
  };

/**
 * The sequential specification of the replicated object, one instance per
 * key. `step` applies an operation's input and returns the new state and
 * the output the operation must have produced; outputs are compared as
 * JSON. An `exec` whose `apply` threw is recorded with the output
 * `{ error: message }`.
 */
export interface Model<S> {
  /** The state of a key before any operation. */
  init(): S;
  /** Applies `input` to `state`: the next state and the expected output. */
  step(state: S, input: unknown): [S, unknown];
}

/** What simulated clients do, and what their history must satisfy. */
export interface Workload<C, S = unknown> {
  /**
   * Draws the next operation of a client.
   *
   * @param random The seeded random source; use only this.
   * @param client The client's number, from 0.
   */
  next(random: () => number, client: number): Operation<C>;
  /** The sequential specification for the linearizability check. */
  model: Model<S>;
}

/** Options of {@linkcode simulate}. */
export interface SimulationOptions<C, S = unknown> {
  /** Drives everything: elections, faults and clients. */
  seed: number;
  /** Founding nodes: 3 or 5. Default 3. */
  nodes?: number;
  /** The faults to inject. Default {@linkcode allFaults}. */
  faults?: readonly Fault[];
  /** A fresh, empty context for each node (and each restart). */
  context: () => C;
  /** The command classes every node registers. */
  commands: readonly CommandClass<C>[];
  /** What the clients do, and the model of the replicated object. */
  workload: Workload<C, S>;
  /**
   * Your invariant over the contexts of the running nodes, checked after
   * every event in which some node applied entries. Throw to fail.
   */
  invariant?: (contexts: ReadonlyMap<NodeId, C>) => void;
  /**
   * A digest of a context. Two nodes that applied the same number of
   * entries must have the same digest. Default `JSON.stringify`.
   */
  fingerprint?: (context: C) => string;
  /** Concurrent clients. Default 4. */
  clients?: number;
  /** Virtual milliseconds of faults before the network heals. Default 3000. */
  faultMs?: number;
  /** Virtual milliseconds after healing for liveness. Default 3000. */
  livenessMs?: number;
  /** Keep a trace of this many events around a failure. Default 0. */
  trace?: number;
  /** The command that replays a run, with `{seed}` in it; for messages. */
  replay?: string;
}

/** Counters of one run. */
export interface SimulationStats {
  /** Events handled. */
  events: number;
  /** Virtual milliseconds simulated. */
  virtualMs: number;
  /** Client operations that completed with a result. */
  completed: number;
  /** Writes whose outcome stayed unknown (timed out, node crashed). */
  unknown: number;
  /** Operations that definitely failed (not committed, read errors). */
  failed: number;
  /** Crashes injected. */
  crashes: number;
  /** Membership changes that completed. */
  membershipChanges: number;
  /** Highest term reached. */
  maxTerm: number;
}

/** A broken property, with what is needed to replay it. */
export interface SimulationFailure {
  /** The property, e.g. "Election Safety" or "Linearizability". */
  check: string;
  /** What was observed. */
  message: string;
  /** Virtual time of the failure. */
  time: number;
  /** The last events before the failure, when tracing. */
  trace: string[];
}

/** The outcome of {@linkcode simulate}. */
export interface SimulationResult {
  /** The seed of the run. */
  seed: number;
  /** The first broken property, or null. */
  failure: SimulationFailure | null;
  /** Counters. */
  stats: SimulationStats;
  /** How to replay this run. */
  replay: string;
}
