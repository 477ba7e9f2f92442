/**
 * The nemesis: injects one fault after another while the run is in its
 * faults phase, then heals everything.
 *
 * @module
 */

import type { NodeId } from "../core/types.ts";
import { inspectCore } from "../server.ts";
import type { Membership } from "./_membership.ts";
import type { Nodes } from "./_nodes.ts";
import { pick, randomInt, shuffle } from "./_random.ts";
import type { Slot } from "./_slot.ts";
import type { World } from "./_world.ts";

/** Draws and injects the faults of a run. */
export class Nemesis<C, S> {
  readonly #world: World<C, S>;
  readonly #nodes: Nodes<C, S>;
  readonly #membership: Membership<C, S>;

  constructor(
    world: World<C, S>,
    nodes: Nodes<C, S>,
    membership: Membership<C, S>,
  ) {
    this.#world = world;
    this.#nodes = nodes;
    this.#membership = membership;
  }

  /** Schedules the first fault. */
  start(): void {
    this.#world.time.at(this.#randomDelay(), () => this.#strike());
  }

  #randomDelay(): number {
    return this.#world.faultEveryMs * 2 * this.#world.random.nemesis();
  }

  #strike(): void {
    const world = this.#world;
    if (world.phase !== "faults" || world.failure) return;
    const fault = pick(world.random.nemesis, [...world.faults]);
    if (fault === "network") this.#shakeNetwork();
    if (fault === "partition") this.#partition();
    if (fault === "crash") this.#crashSome();
    if (fault === "disk") this.#slowDisk();
    if (fault === "membership") this.#membership.change();
    if (fault === "handover") this.#handOver();
    world.after(this.#randomDelay(), () => this.#strike());
  }

  /** The leader hands leadership to a voter of its choice, or a random one. */
  #handOver(): void {
    const world = this.#world;
    const core = this.#nodes.leader()?.incarnation?.server[inspectCore]();
    if (!core) return;
    const voters = core.membership.quorum.voters.filter((id) => id !== core.id);
    const target = world.random.nemesis() < 0.5
      ? undefined
      : pick(world.random.nemesis, voters);
    const chosen = core.transferLeadership(target);
    world.traceLine(`HANDOVER ${core.id} -> ${chosen}`);
  }

  #shakeNetwork(): void {
    const world = this.#world;
    const random = world.random.nemesis;
    const drop = pick(random, [0, 0, 0.02, 0.1, 0.3])!;
    const duplicate = pick(random, [0, 0, 0.05, 0.2])!;
    const delayMax = pick(random, [1, 5, 20, 60])!;
    world.traceLine(
      `NET drop=${drop} duplicate=${duplicate} delay<=${delayMax}`,
    );
    world.network.drop(drop);
    world.network.duplicate(duplicate);
    world.network.delay(0, delayMax);
  }

  #partition(): void {
    const world = this.#world;
    const random = world.random.nemesis;
    const ids = this.#liveIds();
    if (ids.length < 2) return;
    const kind = pick(random, ["split", "oneWay", "isolate", "leader"])!;
    if (kind === "isolate" || kind === "leader") {
      const id = kind === "leader"
        ? this.#nodes.leader()?.id ?? pick(random, ids)!
        : pick(random, ids)!;
      world.traceLine(`PARTITION isolate ${id}`);
      world.network.isolate(id);
    } else {
      const shuffled = shuffle(random, ids);
      const cut = 1 + randomInt(random, ids.length - 1);
      const [a, b] = [shuffled.slice(0, cut), shuffled.slice(cut)];
      world.traceLine(`PARTITION ${kind} ${a} | ${b}`);
      world.network.partition(a, b, { oneWay: kind === "oneWay" });
    }
    // Summed in this order so that a seed replays to the last bit.
    const healAt = world.time.now + 100 + random() * 900;
    world.time.at(healAt, () => this.#healPartition());
  }

  #healPartition(): void {
    this.#world.traceLine("PARTITION heal");
    this.#world.network.heal();
  }

  #liveIds(): NodeId[] {
    return [...this.#world.slots.values()]
      .filter((slot) => slot.incarnation)
      .map((slot) => slot.id);
  }

  #crashSome(): void {
    const random = this.#world.random.nemesis;
    const candidates = [...this.#world.slots.values()].filter((slot) =>
      slot.incarnation
    );
    const leader = this.#nodes.leader();
    const slot = leader && random() < 0.3 ? leader : pick(random, candidates);
    if (slot) this.#crashAndRestart(slot);
  }

  #crashAndRestart(slot: Slot<C>): void {
    const random = this.#world.random.nemesis;
    this.#nodes.crash(slot);
    const downMs = random() < 0.2 ? random() * 10 : 10 + random() * 1000;
    this.#world.after(downMs, () => this.#nodes.restart(slot));
  }

  /**
   * Sometimes crashes a new leader during its takeover, before its first
   * entries spread: the schedule behind Figure 8 of the Raft paper.
   */
  maybeDethrone(slot: Slot<C>): void {
    const world = this.#world;
    const random = world.random.nemesis;
    if (world.phase !== "faults" || !world.faults.has("crash")) return;
    if (random() >= 0.2) return;
    const incarnation = slot.incarnation;
    if (random() < 0.5) {
      // Cut off before its first append leaves: its entries stay its own.
      world.traceLine(`PARTITION isolate new leader ${slot.id}`);
      world.network.isolate(slot.id);
      const healAt = world.time.now + 200 + random() * 600;
      world.time.at(healAt, () => this.#healPartition());
    }
    world.after(random() * 30, () => {
      if (world.phase !== "faults") return;
      if (slot.incarnation === incarnation) this.#crashAndRestart(slot);
    });
  }

  #slowDisk(): void {
    const random = this.#world.random.nemesis;
    const slot = pick(random, [...this.#world.slots.values()]);
    if (!slot) return;
    slot.diskSlowMs = pick(random, [0, 2, 10, 40])!;
    this.#world.traceLine(`${slot.id}: DISK slow<=${slot.diskSlowMs}`);
  }

  /** The faults stop: the network heals, disks speed up, nodes return. */
  heal(): void {
    const world = this.#world;
    world.phase = "healed";
    world.healedAt = world.time.now;
    world.traceLine("HEAL everything");
    world.network.heal();
    world.network.drop(0);
    world.network.duplicate(0);
    world.network.delay(0, 2);
    for (const slot of world.slots.values()) {
      slot.diskSlowMs = 0;
      this.#nodes.restart(slot);
    }
  }
}
