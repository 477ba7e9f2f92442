/**
 * The state one run shares between its parts: options, virtual time,
 * random streams, network, nodes, checks, counters and the trace.
 *
 * @module
 */

import type { NodeId } from "../core/types.ts";
import { MemoryNetwork } from "../transport/memory.ts";
import { Checker } from "./_checks.ts";
import { forkRandom, pick, type Random, sfc32 } from "./_random.ts";
import type { Slot } from "./_slot.ts";
import { VirtualTime } from "./_time.ts";
import {
  allFaults,
  type Fault,
  type SimulationFailure,
  type SimulationOptions,
  type SimulationStats,
} from "./_types.ts";

/**
 * Independent random streams, one per concern, so that a change in how
 * one concern draws leaves the others' choices alone.
 */
export interface RandomStreams {
  network: Random;
  nemesis: Random;
  clients: Random;
  nodes: Random;
  disk: Random;
}

/** Faults first, then healed for liveness, then draining to settle. */
export type Phase = "faults" | "healed" | "draining";

/** Replication limits of every server of a run. */
export interface Tuning {
  entriesPerAppendMax: number;
  inflightMax: number;
}

/** The shared state of one seeded run. */
export class World<C, S> {
  readonly options: SimulationOptions<C, S>;
  readonly faults: ReadonlySet<Fault>;
  readonly time: VirtualTime = new VirtualTime();
  readonly random: RandomStreams;
  readonly network: MemoryNetwork;
  readonly slots: Map<NodeId, Slot<C>> = new Map();
  readonly checker: Checker<C>;
  /** Replication limits, drawn per run: small ones split batches. */
  readonly tuning: Tuning;
  /** Mean virtual milliseconds between faults, drawn per run. */
  readonly faultEveryMs: number;
  readonly stats: SimulationStats = {
    events: 0,
    virtualMs: 0,
    completed: 0,
    unknown: 0,
    failed: 0,
    crashes: 0,
    membershipChanges: 0,
    maxTerm: 0,
  };
  failure: SimulationFailure | null = null;
  phase: Phase = "faults";
  healedAt = Infinity;
  readonly #trace: string[] = [];

  constructor(options: SimulationOptions<C, S>) {
    this.options = options;
    this.faults = new Set(options.faults ?? allFaults);
    this.random = forkStreams(sfc32(options.seed));
    this.network = new MemoryNetwork({
      schedule: (run, delayMs) => this.time.at(this.time.now + delayMs, run),
      random: this.random.network,
    });
    this.checker = new Checker(
      this.slots,
      (check, message) => this.fail(check, message),
      options.fingerprint ?? ((context) => JSON.stringify(context)),
    );

    const nemesis = this.random.nemesis;
    this.tuning = {
      entriesPerAppendMax: pick(nemesis, [1, 2, 8, 512])!,
      inflightMax: pick(nemesis, [1, 4, 32])!,
    };
    this.faultEveryMs = pick(nemesis, [40, 120, 300])!;
  }

  /** Founding nodes of the run. */
  get founders(): number {
    return this.options.nodes ?? 3;
  }

  /** Whether the run keeps a trace. */
  get tracing(): boolean {
    return (this.options.trace ?? 0) > 0;
  }

  /** Records the first broken property; later ones are ignored. */
  fail(check: string, message: string): void {
    if (this.failure) return;
    this.traceLine(`FAILURE ${check}: ${message}`);
    this.failure = {
      check,
      message,
      time: this.time.now,
      trace: [...this.#trace],
    };
  }

  /** Appends to the trace, keeping only its last lines. */
  traceLine(line: string): void {
    const keep = this.options.trace ?? 0;
    if (keep <= 0) return;
    this.#trace.push(`${this.time.now.toFixed(2).padStart(9)} ${line}`);
    if (this.#trace.length > keep) this.#trace.shift();
  }

  /** Schedules `run` `delayMs` virtual milliseconds from now. */
  after(delayMs: number, run: () => void): void {
    this.time.at(this.time.now + delayMs, run);
  }
}

/** The streams, forked from `root` in a fixed order. */
function forkStreams(root: Random): RandomStreams {
  return {
    network: forkRandom(root),
    nemesis: forkRandom(root),
    clients: forkRandom(root),
    nodes: forkRandom(root),
    disk: forkRandom(root),
  };
}
