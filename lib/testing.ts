/**
 * Deterministic simulation testing of whole lilraft clusters.
 *
 * {@linkcode simulate} runs a cluster of real {@linkcode Server}s over the
 * in-memory network and storage on one virtual clock, all driven by one
 * seed: elections, faults (loss, delay, duplication, partitions, crashes,
 * slow disks, membership changes) and client choices. After every event it
 * checks the safety properties of Raft (Election Safety, Log Matching,
 * Leader Completeness, State Machine Safety, durable terms and votes,
 * commit backed by a quorum); at the end it checks liveness after the
 * faults stop and that the client history is linearizable. The same seed
 * always replays the same run.
 *
 * Bring your own commands, context and sequential model; see
 * {@linkcode simulate} for an example.
 *
 * @module
 */

import { linearizable } from "./testing/_linearizability.ts";
import { sfc32 } from "./testing/_random.ts";
import { Simulation } from "./testing/_run.ts";
import type {
  Model,
  SimulationOptions,
  SimulationResult,
} from "./testing/_types.ts";
import type {
  HistoryOperation,
  LinearizabilityResult,
} from "./testing/_linearizability.ts";

export type { Command, CommandClass } from "./command.ts";
export type { NodeId } from "./core/types.ts";
export { allFaults } from "./testing/_types.ts";
export type {
  Fault,
  Model,
  Operation,
  SimulationFailure,
  SimulationOptions,
  SimulationResult,
  SimulationStats,
  Workload,
} from "./testing/_types.ts";
export type {
  HistoryOperation,
  LinearizabilityResult,
} from "./testing/_linearizability.ts";

// ---------------------------------------------------------------- random

/**
 * A small seeded pseudo-random generator (sfc32) returning numbers in
 * [0, 1). The same seed always gives the same sequence.
 *
 * @param seed Any integer; only its low 32 bits count.
 * @returns The generator.
 *
 * @example Two generators with one seed agree
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { seededRandom } from "./testing.ts";
 *
 * equal(seededRandom(7)(), seededRandom(7)());
 * ```
 */
export function seededRandom(seed: number): () => number {
  return sfc32(seed);
}

// ------------------------------------------------------ linearizability

/**
 * Checks that a history is linearizable with respect to `model`, one key at
 * a time, with the Wing–Gong–Lowe search memoised on (linearized set,
 * state). Pending operations may take effect at any point after their call,
 * or never.
 *
 * @param history The operations, in any order.
 * @param model The sequential specification.
 * @param budget Search steps per key before giving up.
 * @returns The verdict.
 *
 * @example A stale read is caught
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { checkLinearizable } from "./testing.ts";
 *
 * const register = {
 *   init: () => 0,
 *   step: (state: number, input: unknown): [number, unknown] =>
 *     typeof input === "number" ? [input, null] : [state, state],
 * };
 * const history = [
 *   { key: "x", input: 1, output: null, call: 0, ret: 1, pending: false },
 *   { key: "x", input: "get", output: 0, call: 2, ret: 3, pending: false },
 * ];
 * equal(checkLinearizable(history, register).ok, false);
 * ```
 */
export function checkLinearizable<S>(
  history: readonly HistoryOperation[],
  model: Model<S>,
  budget = 2_000_000,
): LinearizabilityResult {
  return linearizable(history, model, budget);
}

// ------------------------------------------------------------ entry points

/**
 * Runs one seeded simulation of a cluster and reports the first broken
 * property, if any. Deterministic: the same options replay the same run.
 *
 * @param options The seed, the cluster, the faults, and your commands,
 *   context, workload and invariant.
 * @returns The outcome; `failure` is null when every check passed.
 *
 * @example Simulate a cluster of your own state machine
 * ```ts
 * import { equal } from "node:assert/strict";
 * import type { Command } from "./command.ts";
 * import { simulate, type Workload } from "./testing.ts";
 *
 * class Append implements Command<number[], number> {
 *   constructor(public value: number) {}
 *   name(): string {
 *     return "append";
 *   }
 *   apply(context: number[]): number {
 *     context.push(this.value);
 *     return context.length;
 *   }
 * }
 *
 * let next = 0;
 * const workload: Workload<number[], number[]> = {
 *   next: (random) =>
 *     random() < 0.5
 *       ? { kind: "exec", input: next, command: new Append(next++) }
 *       : { kind: "read", input: "read", query: (list) => [...list] },
 *   model: {
 *     init: () => [],
 *     step: (list, input) =>
 *       typeof input === "number"
 *         ? [[...list, input], list.length + 1]
 *         : [list, list],
 *   },
 * };
 * const result = await simulate({
 *   seed: 42,
 *   context: (): number[] => [],
 *   commands: [Append],
 *   workload,
 *   invariant: (contexts) => {
 *     for (const list of contexts.values()) {
 *       if (new Set(list).size !== list.length) throw new Error("twice");
 *     }
 *   },
 * });
 * equal(result.failure, null);
 * ```
 */
export function simulate<C, S>(
  options: SimulationOptions<C, S>,
): Promise<SimulationResult> {
  return new Simulation(options).run();
}

/**
 * Formats a failed run for a person: the broken property, the seed, the
 * replay command and the trace, if any.
 *
 * @param result A result of {@linkcode simulate}.
 * @returns The report, or an empty string when the run passed.
 */
export function formatFailure(result: SimulationResult): string {
  const failure = result.failure;
  if (!failure) return "";
  const lines = [
    `${failure.check} violated at ${failure.time.toFixed(2)} ms ` +
    `(seed ${result.seed}): ${failure.message}`,
    `replay: ${result.replay}`,
  ];
  if (failure.trace.length > 0) lines.push("trace:", ...failure.trace);
  return lines.join("\n");
}

/**
 * Runs {@linkcode simulate} for each seed and throws on the first failure
 * with its report: the one-liner for a `Deno.test`.
 *
 * @param seeds The seeds to run.
 * @param options Everything but the seed.
 * @throws {Error} with {@linkcode formatFailure}'s report.
 */
export async function assertSimulations<C, S>(
  seeds: Iterable<number>,
  options: Omit<SimulationOptions<C, S>, "seed">,
): Promise<void> {
  for (const seed of seeds) {
    const result = await simulate({ ...options, seed });
    if (result.failure) throw new Error(formatFailure(result));
  }
}
