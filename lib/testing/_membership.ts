/**
 * Membership changes as a fault: 3 to 5 voters, 5 to 3, or a replacement,
 * possibly removing the leader.
 *
 * @module
 */

import { Config } from "../config.ts";
import type { NodeId } from "../core/types.ts";
import { errorName, errorText } from "./_errors.ts";
import type { Nodes } from "./_nodes.ts";
import { pick, shuffle } from "./_random.ts";
import { member, type Slot } from "./_slot.ts";
import type { World } from "./_world.ts";

/** Nodes a run may create beyond the founders. */
const extraNodesMax = 6;
/** How long a proposed change blocks the next one, at most. */
const changeBusyMs = 5000;
/** Errors of `setConfig` that a faulty cluster may rightly return. */
const expectedErrors = [
  "ConfigChangeError",
  "NoLeaderError",
  "NotCommittedError",
  "StoppedError",
  "TimedOutError",
];

/** Proposes membership changes and retires the nodes that left. */
export class Membership<C, S> {
  readonly #world: World<C, S>;
  readonly #nodes: Nodes<C, S>;
  #nextId: number;
  #busyUntil = 0;

  constructor(world: World<C, S>, nodes: Nodes<C, S>) {
    this.#world = world;
    this.#nodes = nodes;
    this.#nextId = world.founders + 1;
  }

  /** 3→5, 5→3 or a replacement, possibly removing the leader. */
  change(): void {
    const random = this.#world.random.nemesis;
    if (this.#world.time.now < this.#busyUntil) return;
    if (this.#nextId > this.#world.founders + extraNodesMax) return;
    const leader = this.#nodes.leader();
    if (!leader) return;
    const status = leader.incarnation!.server.status();
    if (status.oldMembers.length > 0) return;

    const voters = status.members.map((one) => one.id);
    const grow = voters.length <= 3 && random() < 0.5;
    const shrink = voters.length >= 5 && random() < 0.5;
    const removed = shrink ? 2 : grow ? 0 : 1;
    const added = grow ? 2 : shrink ? 0 : 1;
    const leaving = new Set<NodeId>();
    if (removed > 0 && random() < 0.5) leaving.add(leader.id);
    for (const id of shuffle(random, voters)) {
      if (leaving.size < removed) leaving.add(id);
    }

    const target = voters.filter((id) => !leaving.has(id));
    for (let count = 0; count < added; count++) {
      target.push(this.#addJoiner().id);
    }
    this.#propose(voters, target, [...leaving]);
  }

  #addJoiner(): Slot<C> {
    const id = this.#nextId++;
    const everyone = [...this.#world.slots.keys(), id].map(member);
    return this.#nodes.add(id, true, new Config(...everyone));
  }

  #propose(voters: NodeId[], target: NodeId[], leaving: NodeId[]): void {
    const world = this.#world;
    const via = pick(
      world.random.nemesis,
      voters.filter((id) => world.slots.get(id)?.incarnation?.running),
    );
    if (via === undefined) return;
    const server = world.slots.get(via)!.incarnation!.server;
    this.#busyUntil = world.time.now + changeBusyMs;
    world.traceLine(`MEMBERSHIP via ${via}: ${voters} -> ${target}`);
    server.setConfig(...target.map(member)).then(
      () => this.#done(target, leaving),
      (error) => this.#failed(error),
    );
  }

  #done(target: NodeId[], leaving: NodeId[]): void {
    const world = this.#world;
    world.traceLine(`MEMBERSHIP done: ${target}`);
    world.stats.membershipChanges++;
    this.#busyUntil = 0;
    const stopAt = world.time.now + 100 + world.random.nemesis() * 400;
    for (const id of leaving) {
      world.time.at(stopAt, () => this.#nodes.decommission(id));
    }
  }

  #failed(error: unknown): void {
    this.#world.traceLine(`MEMBERSHIP failed: ${errorText(error)}`);
    this.#busyUntil = 0;
    if (!expectedErrors.includes(errorName(error))) {
      this.#world.fail("Membership", `setConfig failed: ${errorText(error)}`);
    }
  }
}
