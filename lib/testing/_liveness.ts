/**
 * Liveness once the faults stop: a leader followed by a quorum in time,
 * every operation settled, every member converged on the committed log.
 *
 * @module
 */

import { inspectCore } from "../server.ts";
import type { Clients } from "./_clients.ts";
import type { Nodes } from "./_nodes.ts";
import type { Slot } from "./_slot.ts";
import type { World } from "./_world.ts";

/** A leader must be elected this long after the network heals. */
const electionBoundMs = 2000;
/** Time for every operation to settle and every member to converge. */
export const drainBoundMs = 4000;

/** The liveness checks of a run. */
export class Liveness<C, S> {
  readonly #world: World<C, S>;
  readonly #nodes: Nodes<C, S>;
  readonly #clients: Clients<C, S>;
  #leaderAfterHeal = false;

  constructor(world: World<C, S>, nodes: Nodes<C, S>, clients: Clients<C, S>) {
    this.#world = world;
    this.#nodes = nodes;
    this.#clients = clients;
  }

  /** After healing, some leader must win a quorum's allegiance in time. */
  checkLeader(): void {
    const world = this.#world;
    if (world.phase === "faults" || this.#leaderAfterHeal) return;
    const leader = this.#nodes.leader();
    if (leader && this.#followed(leader)) {
      this.#leaderAfterHeal = true;
      return;
    }
    if (world.time.now > world.healedAt + electionBoundMs) {
      world.fail(
        "Liveness",
        `No leader within ${electionBoundMs} ms after the network healed`,
      );
    }
  }

  #followed(leader: Slot<C>): boolean {
    const core = leader.incarnation!.server[inspectCore]()!;
    const voters = core.membership.quorum.voters;
    const following = voters.filter((id) => {
      const other = this.#world.slots.get(id)?.incarnation;
      const otherCore = other?.running ? other.server[inspectCore]() : null;
      return otherCore?.term === core.term && otherCore.leader === leader.id;
    });
    return following.length * 2 > voters.length;
  }

  /** No operation pending and the members converged. */
  settled(): boolean {
    if (this.#clients.hasPending()) return false;
    return this.#converged() !== null;
  }

  /** Every running member applied what the leader committed, or null. */
  #converged(): number | null {
    const leader = this.#nodes.leader();
    if (!leader) return null;
    const core = leader.incarnation!.server[inspectCore]()!;
    if (core.changeInProgress()) return null;
    for (const id of core.membership.quorum.voters) {
      const slot = this.#world.slots.get(id);
      if (!slot?.incarnation?.running) return null;
      const status = slot.incarnation.server.status();
      if (status.appliedIndex !== core.commit) return null;
      if (status.lastLogIndex !== core.lastIndex) return null;
    }
    return core.commit;
  }

  /** After draining: nothing pending, and the members converged. */
  checkSettled(): void {
    const world = this.#world;
    if (world.failure) return;
    const pending = this.#clients.pendingCount();
    if (pending > 0) {
      world.fail(
        "Liveness",
        `${pending} operation(s) still pending ${drainBoundMs} ms ` +
          "after the clients stopped",
      );
    } else if (this.#converged() === null) {
      world.fail(
        "Liveness",
        "The members did not converge on one leader's committed log " +
          `within ${drainBoundMs} ms after the clients stopped`,
      );
    }
  }
}
