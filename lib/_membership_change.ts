/**
 * The leader's side of a membership change (section 6): new members catch
 * up as learners, then the joint and the new configuration are committed.
 *
 * @module
 */

import type { ResolvedOptions } from "./server_options.ts";
import { NotLeaderError, type RaftCore } from "./core/raft.ts";
import type { Member, NodeId } from "./core/types.ts";
import {
  ConfigChangeError,
  NotCommittedError,
  TimedOutError,
} from "./errors.ts";
import type { Logger } from "./logger.ts";

/** What a {@linkcode MembershipChange} needs from the server. */
export interface MembershipHost {
  /** The server's id, for logs. */
  readonly id: NodeId;
  /** Where the start of a change is logged. */
  readonly logger: Logger;
  /** The timeouts and the AppendEntries batch size. */
  readonly options: Pick<
    ResolvedOptions,
    "catchUpTimeoutMs" | "execTimeoutMs" | "entriesPerAppendMax"
  >;
  /** Has the server process what the core has ready. */
  kick(): void;
  /** Waits until `ready()` holds; rejects with `timeout()` at the end. */
  waitFor(
    ready: () => boolean,
    timeoutMs: number,
    timeout: () => Error,
  ): Promise<void>;
  /** Makes the next peer update tell the transport the peers again. */
  invalidatePeers(): void;
  /** Tells the transport the peers, if they changed. */
  updatePeers(): void;
}

/** Runs one membership change at a time, on the leader. */
export class MembershipChange {
  readonly #host: MembershipHost;
  #learners = new Map<NodeId, Member>();
  #changing = false;

  /**
   * Creates the orchestrator; no change runs until `change` is called.
   *
   * @param host The server the changes run on.
   */
  constructor(host: MembershipHost) {
    this.#host = host;
  }

  /** New members catching up during a change, by id. */
  get learners(): ReadonlyMap<NodeId, Member> {
    return this.#learners;
  }

  /**
   * Changes the membership to exactly `members`.
   *
   * @param core The leader's core.
   * @param members The voters of the new configuration.
   * @throws {ConfigChangeError} while another change is in progress, or
   *   when a new member does not catch up in time.
   * @throws {NotLeaderError} when leadership is lost while catching up.
   * @throws {NotCommittedError} when the configuration entry is overwritten.
   * @throws {TimedOutError} when the change does not finish in time.
   */
  async change(core: RaftCore, members: Member[]): Promise<void> {
    if (this.#changing || core.changeInProgress()) {
      throw new ConfigChangeError(
        "Cannot change the configuration: another change is in progress",
      );
    }
    this.#changing = true;
    try {
      await this.#catchUp(core, members);
      const term = core.term;
      const index = core.proposeMembership(members);
      this.#host.logger.info("membership change started", {
        id: this.#host.id,
        index,
        members: members.map((member) => member.id),
      });
      this.#host.kick();
      await this.#waitForMembership(core, index, term);
    } finally {
      for (const id of this.#learners.keys()) core.removeLearner(id);
      this.#learners.clear();
      this.#changing = false;
    }
  }

  /** Replicates to new members as learners until they are nearly current. */
  async #catchUp(core: RaftCore, members: Member[]): Promise<void> {
    const current = new Set(core.membership.quorum.all());
    const added = members.filter((member) => !current.has(member.id));
    if (added.length === 0) return;
    for (const member of added) {
      this.#learners.set(member.id, member);
      core.addLearner(member.id);
    }
    this.#host.invalidatePeers();
    this.#host.updatePeers();
    this.#host.kick();
    try {
      await this.#waitForLearners(core, added);
    } catch (error) {
      this.#host.invalidatePeers();
      throw error;
    }
    if (core.role !== "leader") throw new NotLeaderError(core.leader);
  }

  #waitForLearners(core: RaftCore, added: Member[]): Promise<void> {
    const { catchUpTimeoutMs, entriesPerAppendMax } = this.#host.options;
    // Caught up: holds everything committed before the change began, and
    // trails the leader by at most one AppendEntries batch.
    const target = core.commit;
    const lag = entriesPerAppendMax ?? 512;
    const caughtUp = () =>
      added.every((member) => {
        const match = core.progressOf(member.id)?.match ?? 0;
        return match >= target && core.lastIndex - match <= lag;
      });
    return this.#host.waitFor(
      () => caughtUp() || core.role !== "leader",
      catchUpTimeoutMs,
      () =>
        new ConfigChangeError(
          `Cannot change the configuration: node(s) ${
            added.map((member) => member.id).join(", ")
          } did not catch up within ${catchUpTimeoutMs} ms`,
        ),
    );
  }

  #waitForMembership(
    core: RaftCore,
    index: number,
    term: number,
  ): Promise<void> {
    return this.#host.waitFor(
      () => {
        // Only a committed entry at `index` settles it: an overwritten
        // entry may still come back with a later leader.
        if (core.commit >= index && core.termAt(index) !== term) {
          throw new NotCommittedError(
            `Configuration entry ${index} was overwritten: change not committed`,
          );
        }
        return core.membershipIndex > index && !core.membership.joint &&
          core.commit >= core.membershipIndex;
      },
      this.#host.options.execTimeoutMs,
      () =>
        new TimedOutError(
          `Configuration change at ${index} did not finish in time: ` +
            "it may still complete",
        ),
    );
  }
}
