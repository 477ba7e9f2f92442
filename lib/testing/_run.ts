/**
 * One seeded run of a cluster: wires the parts together and drives the
 * event loop, checking the safety properties after every event.
 *
 * @module
 */

import type { NodeId } from "../core/types.ts";
import { Clients } from "./_clients.ts";
import { errorText } from "./_errors.ts";
import { Nemesis } from "./_faults.ts";
import { drainBoundMs, Liveness } from "./_liveness.ts";
import { Membership } from "./_membership.ts";
import { Nodes } from "./_nodes.ts";
import type { SimulationOptions, SimulationResult } from "./_types.ts";
import { World } from "./_world.ts";

/** Microtask turns after each event: the server's async steps settle. */
const microtaskTurnsPerEvent = 40;
/** Events per run before the simulator reports a runaway. */
const eventsMax = 3_000_000;

/** One seeded run of a cluster; see `simulate` in `../testing.ts`. */
export class Simulation<C, S> {
  readonly #world: World<C, S>;
  readonly #nodes: Nodes<C, S>;
  readonly #clients: Clients<C, S>;
  readonly #nemesis: Nemesis<C, S>;
  readonly #liveness: Liveness<C, S>;
  readonly #faultMs: number;
  readonly #livenessMs: number;

  constructor(options: SimulationOptions<C, S>) {
    this.#faultMs = options.faultMs ?? 3000;
    this.#livenessMs = options.livenessMs ?? 3000;
    const world = new World(options);
    const nodes = new Nodes(world, {
      elected: (slot) => this.#nemesis.maybeDethrone(slot),
      abandoned: (incarnation) => this.#clients.abandon(incarnation),
    });
    this.#world = world;
    this.#nodes = nodes;
    this.#clients = new Clients(world, nodes);
    this.#nemesis = new Nemesis(world, nodes, new Membership(world, nodes));
    this.#liveness = new Liveness(world, nodes, this.#clients);
  }

  /** Runs through faults, liveness and draining, then checks the end. */
  async run(): Promise<SimulationResult> {
    const world = this.#world;
    this.#nodes.found();
    this.#clients.start();
    this.#nemesis.start();
    world.time.at(this.#faultMs, () => this.#nemesis.heal());
    const end = this.#faultMs + this.#livenessMs;
    await this.#runUntil(() => false, end);

    world.phase = "draining";
    await this.#runUntil(() => this.#liveness.settled(), end + drainBoundMs);
    this.#liveness.checkSettled();
    if (!world.failure) this.#clients.checkHistory();

    world.stats.virtualMs = world.time.now;
    world.stats.maxTerm = world.checker.maxTerm;
    return {
      seed: world.options.seed,
      failure: world.failure,
      stats: world.stats,
      replay: this.#replay(),
    };
  }

  #replay(): string {
    const template = this.#world.options.replay ??
      "simulate({ ...options, seed: {seed}, trace: 200 })";
    return template.replaceAll("{seed}", String(this.#world.options.seed));
  }

  async #runUntil(done: () => boolean, limit: number): Promise<void> {
    const world = this.#world;
    while (!world.failure && !done()) {
      const event = world.time.next(limit);
      if (!event) {
        world.time.now = Math.max(world.time.now, limit);
        return;
      }
      world.time.now = event.time;
      if (++world.stats.events > eventsMax) {
        world.fail("Simulator", `More than ${eventsMax} events`);
        return;
      }
      try {
        event.run();
      } catch (error) {
        world.fail("Simulator", `An event threw: ${errorText(error)}`);
        return;
      }
      for (let turn = 0; turn < microtaskTurnsPerEvent; turn++) await null;
      this.#check();
    }
  }

  #check(): void {
    const world = this.#world;
    let applied = false;
    for (const slot of world.slots.values()) {
      const incarnation = slot.incarnation;
      if (!incarnation || incarnation.stopped) continue;
      if (world.checker.checkNode(slot, incarnation)) applied = true;
      if (world.failure) return;
    }
    if (applied) this.#userInvariant();
    this.#liveness.checkLeader();
  }

  #userInvariant(): void {
    const world = this.#world;
    const invariant = world.options.invariant;
    if (!invariant) return;
    const contexts = new Map<NodeId, C>();
    for (const slot of world.slots.values()) {
      const incarnation = slot.incarnation;
      if (incarnation?.running) {
        contexts.set(slot.id, incarnation.server.context);
      }
    }
    try {
      invariant(contexts);
    } catch (error) {
      world.fail("Invariant", errorText(error));
    }
  }
}
