/**
 * The Raft state machine: pure and deterministic.
 *
 * No I/O, no timers, no clock, no randomness of its own. Time arrives as
 * {@linkcode RaftCore.tick}, messages as {@linkcode RaftCore.step}, and the
 * results leave as a {@linkcode Ready} batch that the shell must handle in
 * this order: send `messagesNow`, persist `hardState` and `entries`, then
 * send `messages`, apply `committed`, answer `reads`, and call
 * {@linkcode RaftCore.advance}.
 *
 * Sections cited are those of the Raft paper ("In Search of an
 * Understandable Consensus Algorithm", extended version) and of Ongaro's
 * dissertation.
 *
 * @module
 */

import { assert } from "./assert.ts";
import { RaftLog } from "./log.ts";
import { Membership, validateMembers } from "./membership.ts";
import { Progress } from "./progress.ts";
import {
  type AppendRequest,
  type AppendResponse,
  type Entry,
  EntryKind,
  type HardState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Member,
  type Message,
  type NodeId,
  type TimeoutNowRequest,
  type VoteRequest,
  type VoteResponse,
} from "./types.ts";
import { type Logger, silentLogger } from "../logger.ts";

/** The role a node plays in its current term. */
export type Role = "follower" | "precandidate" | "candidate" | "leader";

/** Everything the core starts from. */
export interface CoreOptions {
  /** This node's id. */
  id: NodeId;
  /** The durable hard state. */
  hardState: HardState;
  /** The durable log, contiguous from index 1. */
  entries: Entry[];
  /** Committed entries up to here are not handed out for applying. */
  applied: number;
  /**
   * Members of a brand-new cluster. With an empty log they are written as
   * entry 1 (term 1), identical on every founding node. Leave out to join
   * an existing cluster: the node then waits for a leader to contact it.
   */
  bootstrap?: Member[] | undefined;
  /** Ticks without a leader before a follower campaigns (the minimum). */
  electionTicks: number;
  /** Ticks between leader heartbeats; less than `electionTicks`. */
  heartbeatTicks: number;
  /** A random source in [0, 1), seeded by the caller. */
  random: () => number;
  /** Where role and membership changes are logged. */
  logger?: Logger;
  /** AppendEntries requests outstanding per follower. */
  inflightMax?: number | undefined;
  /** Entries carried by one AppendEntries request. */
  entriesPerAppendMax?: number | undefined;
  /**
   * Payload characters carried by one AppendEntries request; it always
   * carries at least one entry.
   */
  appendBytesMax?: number | undefined;
}

/** A read-index request's outcome: `index` is null if leadership was lost. */
export interface ReadState {
  /** The caller's request id. */
  id: number;
  /** Apply up to this index, then read; null: not leader any more. */
  index: number | null;
}

/** The work the core hands to the shell. */
export interface Ready {
  /** Leader messages that may leave before persisting (append, heartbeat). */
  messagesNow: Message[];
  /** Hard state to persist, or null when unchanged. */
  hardState: HardState | null;
  /** Entries to persist; may start below the last stored index. */
  entries: Entry[];
  /** Messages to send only once the above is durable. */
  messages: Message[];
  /** Committed, durable entries to apply, in order. */
  committed: Entry[];
  /** Read-index requests that are decided. */
  reads: ReadState[];
}

/** Thrown by operations that only a leader can perform. */
export class NotLeaderError extends Error {
  /** The leader this node knows of, or 0. */
  readonly leader: NodeId;

  /** @param leader The leader this node knows of, or 0. */
  constructor(leader: NodeId) {
    super(`This node is not the leader: leader is ${leader || "unknown"}`);
    this.name = "NotLeaderError";
    this.leader = leader;
  }
}

interface PendingRead {
  id: number;
  round: number;
}

/** A Raft node's protocol state; see the module doc for the contract. */
export class RaftCore {
  readonly #id: NodeId;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #electionTicks: number;
  readonly #heartbeatTicks: number;
  readonly #inflightMax: number;
  readonly #entriesPerAppendMax: number;
  readonly #appendBytesMax: number;
  readonly #log: RaftLog;

  #role: Role = "follower";
  #term: number;
  #vote: NodeId;
  #commit: number;
  #leader: NodeId = 0;
  #saved: HardState;
  #handedOut: number;

  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #electionTimeout = 0;

  #configs: { index: number; membership: Membership }[] = [];
  #progress = new Map<NodeId, Progress>();
  #votes = new Map<NodeId, boolean>();
  #termStart = 0;
  #round = 0;
  #reads: PendingRead[] = [];
  #readsDone: ReadState[] = [];
  #heartbeatWanted = false;
  #appendsWanted = false;
  #commitNoticeDue = false;
  #transfer: { target: NodeId; elapsed: number; sent: boolean } | undefined;

  #messages: Message[] = [];
  #messagesNow: Message[] = [];

  /** @param options The durable state and the tuning. */
  constructor(options: CoreOptions) {
    assert(
      options.heartbeatTicks > 0 &&
        options.heartbeatTicks < options.electionTicks,
      "heartbeatTicks must be positive and below electionTicks",
    );
    this.#id = options.id;
    this.#logger = options.logger ?? silentLogger;
    this.#random = options.random;
    this.#electionTicks = options.electionTicks;
    this.#heartbeatTicks = options.heartbeatTicks;
    this.#inflightMax = options.inflightMax ?? 32;
    this.#entriesPerAppendMax = options.entriesPerAppendMax ?? 512;
    this.#appendBytesMax = options.appendBytesMax ?? 4 * 1024 * 1024;
    this.#log = new RaftLog(options.entries);
    // A torn batch may keep entries whose term the hard state never saw.
    const termBehind = options.hardState.term < this.#log.lastTerm();
    this.#term = Math.max(options.hardState.term, this.#log.lastTerm());
    this.#vote = termBehind ? 0 : options.hardState.vote;
    this.#commit = Math.min(options.hardState.commit, this.#log.lastIndex());
    this.#saved = { ...options.hardState };
    this.#handedOut = Math.min(options.applied, this.#commit);
    if (this.#log.lastIndex() === 0 && options.bootstrap) {
      this.#bootstrap(options.bootstrap);
    }
    this.#loadConfigs(1);
    this.#resetElectionTimeout();
  }

  // ---------------------------------------------------------------- status

  /** This node's id. */
  get id(): NodeId {
    return this.#id;
  }

  /** The current role. */
  get role(): Role {
    return this.#role;
  }

  /** The current term. */
  get term(): number {
    return this.#term;
  }

  /** The leader of the current term as far as known, or 0. */
  get leader(): NodeId {
    return this.#leader;
  }

  /** The commit index. */
  get commit(): number {
    return this.#commit;
  }

  /** The last log index. */
  get lastIndex(): number {
    return this.#log.lastIndex();
  }

  /** The term of the entry at `index`, or undefined past the end. */
  termAt(index: number): number | undefined {
    return this.#log.term(index);
  }

  /** Entries from `from` to `to` inclusive (for tests and inspection). */
  entries(from: number = 1, to: number = this.#log.lastIndex()): Entry[] {
    return this.#log.slice(from, to);
  }

  /** The configuration in force: the latest in the log, committed or not. */
  get membership(): Membership {
    return this.#configs.at(-1)?.membership ?? Membership.empty();
  }

  /** Index of the entry holding {@linkcode membership}, 0 for none. */
  get membershipIndex(): number {
    return this.#configs.at(-1)?.index ?? 0;
  }

  /** Whether a leadership hand-over is under way. */
  get handingOver(): boolean {
    return this.#transfer !== undefined;
  }

  /** Replication progress of a peer, as the leader sees it. */
  progressOf(id: NodeId): Readonly<Progress> | undefined {
    return this.#progress.get(id);
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.#role === "leader") {
      this.#tickLeader();
      return;
    }
    this.#electionElapsed++;
    if (this.#electionElapsed < this.#electionTimeout) return;
    this.#electionElapsed = 0;
    if (this.#promotable()) this.#campaign(true);
  }

  /** Starts an election now, skipping the pre-vote. */
  campaign(): void {
    if (this.#role !== "leader" && this.#promotable()) this.#campaign(false);
  }

  /**
   * Appends a new entry as leader.
   *
   * @returns Where the entry went: its index and term.
   * @throws {NotLeaderError} when this node is not the leader.
   */
  propose(data: string, kind: EntryKind = EntryKind.Command): {
    index: number;
    term: number;
  } {
    if (this.#role !== "leader") throw new NotLeaderError(this.#leader);
    // While handing over, new entries would only delay the successor.
    if (this.#transfer) throw new NotLeaderError(0);
    const index = this.#appendOwn(kind, data);
    return { index, term: this.#term };
  }

  /**
   * Starts a membership change to `members` by appending C_old,new
   * (section 6). C_new follows automatically once the joint entry commits.
   *
   * @returns The index of the joint configuration entry.
   * @throws {NotLeaderError} when this node is not the leader.
   * @throws {RangeError} when a change is already in progress.
   * @throws {TypeError} when `members` is not a valid member list.
   */
  proposeMembership(members: Member[]): number {
    validateMembers(members);
    if (this.#role !== "leader") throw new NotLeaderError(this.#leader);
    if (this.changeInProgress()) {
      throw new RangeError(
        "Cannot start a membership change while one is in progress: " +
          `configuration at ${this.membershipIndex} is ` +
          (this.membership.joint ? "joint" : "not yet committed"),
      );
    }
    const old = this.membership.data.members;
    const data = Membership.encode({ members, old });
    return this.#appendOwn(EntryKind.Config, data);
  }

  /** Whether a configuration is joint or not yet committed. */
  changeInProgress(): boolean {
    return this.membership.joint || this.membershipIndex > this.#commit;
  }

  /**
   * Starts replicating to a non-voting member so it can catch up before a
   * membership change makes it a voter (dissertation 4.2.1).
   *
   * @throws {NotLeaderError} when this node is not the leader.
   */
  addLearner(id: NodeId): void {
    if (this.#role !== "leader") throw new NotLeaderError(this.#leader);
    if (this.#progress.has(id) || id === this.#id) return;
    this.#progress.set(id, new Progress(this.#log.lastIndex() + 1, true));
    this.#appendsWanted = true;
  }

  /** Stops replicating to a learner that did not become a member. */
  removeLearner(id: NodeId): void {
    if (this.#progress.get(id)?.learner) this.#progress.delete(id);
  }

  /**
   * Asks to serve a linearizable read (section 6.4): the leader confirms it
   * still leads with a heartbeat round, then reports the index to apply up
   * to before reading. The answer comes in {@linkcode Ready.reads}.
   *
   * @throws {NotLeaderError} when this node is not the leader.
   */
  readIndex(id: number): void {
    if (this.#role !== "leader") throw new NotLeaderError(this.#leader);
    this.#reads.push({ id, round: this.#round + 1 });
    this.#heartbeatWanted = true;
  }

  /**
   * Hands leadership to `target`, or to the most up-to-date voter: once its
   * log matches, it is told to campaign at once (dissertation 3.10). New
   * proposals are refused meanwhile; the hand-over is abandoned after an
   * election timeout.
   *
   * @returns The chosen successor, or 0 when there is none.
   */
  transferLeadership(target?: NodeId): NodeId {
    if (this.#role !== "leader") return 0;
    const chosen = target ?? this.#successor();
    const progress = this.#progress.get(chosen);
    if (!progress || !this.membership.isVoter(chosen)) return 0;
    this.#transfer = { target: chosen, elapsed: 0, sent: false };
    this.#logger.info("handing over leadership", {
      id: this.#id,
      term: this.#term,
      to: chosen,
    });
    if (progress.match === this.#log.lastIndex()) {
      this.#maybeTimeoutNow(chosen, progress);
    } else {
      // Resend from the known match: earlier requests may have been lost.
      progress.probe();
      this.#sendAppend(chosen, progress, false);
    }
    return chosen;
  }

  #successor(): NodeId {
    let best: NodeId = 0;
    let bestMatch = -1;
    for (const id of this.membership.quorum.voters) {
      const match = this.#progress.get(id)?.match ?? -1;
      if (id !== this.#id && match > bestMatch) [best, bestMatch] = [id, match];
    }
    return best;
  }

  #maybeTimeoutNow(id: NodeId, progress: Progress): void {
    const transfer = this.#transfer;
    if (transfer?.target !== id || transfer.sent) return;
    if (progress.match !== this.#log.lastIndex()) return;
    transfer.sent = true;
    const message: TimeoutNowRequest = {
      type: "timeoutNow",
      from: this.#id,
      to: id,
      term: this.#term,
    };
    this.#messages.push(message);
  }

  /**
   * Asks the leader to tell follower `id` as soon as `index` commits, for a
   * follower waiting to apply an entry it forwarded.
   */
  noticeCommit(id: NodeId, index: number): void {
    const progress = this.#progress.get(id);
    if (this.#role !== "leader" || !progress) return;
    progress.noticeAt = Math.max(progress.noticeAt, index);
    this.#sendNotices();
  }

  #sendNotices(): void {
    for (const [id, progress] of this.#progress) {
      if (progress.noticeAt === 0 || progress.noticeAt > this.#commit) continue;
      progress.noticeAt = 0;
      this.#sendAppend(id, progress, true);
    }
  }

  /** Reports that messages to `id` failed; the leader probes it again. */
  reportUnreachable(id: NodeId): void {
    const progress = this.#progress.get(id);
    if (this.#role !== "leader" || !progress) return;
    if (progress.state === "replicate") progress.probe();
  }

  /**
   * Feeds one message from a peer into the state machine.
   *
   * Messages addressed elsewhere are ignored.
   */
  step(message: Message): void {
    if (message.to !== this.#id) return;
    if (message.term > this.#term && !this.#higherTerm(message)) return;
    if (message.term < this.#term) {
      this.#lowerTerm(message);
      return;
    }
    this.#dispatch(message);
  }

  // ---------------------------------------------------------------- output

  /** Whether {@linkcode ready} has anything to hand out. */
  hasReady(): boolean {
    return this.#appendsWanted || this.#heartbeatWanted ||
      this.#messages.length > 0 || this.#messagesNow.length > 0 ||
      this.#readsDone.length > 0 || this.#hardStateChanged() ||
      this.#log.hasUnstable() ||
      this.#applicable() > this.#handedOut;
  }

  /**
   * Leader messages that may leave before the pending state is persisted:
   * AppendEntries and heartbeats carry nothing this node must have stored.
   */
  takeMessagesNow(): Message[] {
    this.#flush();
    const messages = this.#messagesNow;
    this.#messagesNow = [];
    return messages;
  }

  /** Hands out the pending work; see the module doc for the order. */
  ready(): Ready {
    const messagesNow = this.takeMessagesNow();
    const hardState = this.#hardStateChanged() ? this.#hardState() : null;
    if (hardState) this.#saved = hardState;
    const entries = this.#log.takeUnstable();
    const upTo = this.#applicable();
    const committed = this.#log.slice(this.#handedOut + 1, upTo);
    this.#handedOut = Math.max(this.#handedOut, upTo);
    const ready = {
      messagesNow,
      hardState,
      entries,
      messages: this.#messages,
      committed,
      reads: this.#readsDone,
    };
    this.#messages = [];
    this.#readsDone = [];
    return ready;
  }

  /** Confirms that a {@linkcode Ready} was persisted and handled. */
  advance(ready: Ready): void {
    const last = ready.entries.at(-1);
    if (last) this.#log.markPersisted(last.index, last.term);
    if (this.#role === "leader") this.#maybeCommit();
  }

  // ------------------------------------------------------------- elections

  #promotable(): boolean {
    return this.membership.isVoter(this.#id);
  }

  #campaign(pre: boolean, transfer = false): void {
    const term = this.#term + 1;
    if (pre) {
      this.#role = "precandidate";
      this.#leader = 0;
    } else {
      this.#becomeCandidate();
    }
    this.#votes = new Map([[this.#id, true]]);
    this.#resetElectionTimeout();
    const level = pre ? "debug" : "info";
    this.#logger[level](pre ? "started pre-vote" : "started election", {
      id: this.#id,
      term,
    });
    if (this.#tallyVotes()) return;
    for (const peer of this.membership.quorum.all()) {
      if (peer === this.#id) continue;
      this.#messages.push({
        type: "vote",
        from: this.#id,
        to: peer,
        term,
        pre,
        lastIndex: this.#log.lastIndex(),
        lastTerm: this.#log.lastTerm(),
        transfer,
      });
    }
  }

  #becomeCandidate(): void {
    this.#role = "candidate";
    this.#term++;
    this.#vote = this.#id;
    this.#leader = 0;
  }

  /** Counts votes; returns true once the campaign is decided. */
  #tallyVotes(): boolean {
    const result = this.membership.quorum.voteResult((id) =>
      this.#votes.get(id)
    );
    if (result === "pending") return false;
    if (result === "lost") {
      this.#becomeFollower(this.#term, 0);
    } else if (this.#role === "precandidate") {
      this.#campaign(false);
    } else {
      this.#becomeLeader();
    }
    return true;
  }

  #becomeFollower(term: number, leader: NodeId): void {
    const wasLeader = this.#role === "leader";
    if (term > this.#term) {
      this.#term = term;
      this.#vote = 0;
    }
    this.#role = "follower";
    this.#electionElapsed = 0;
    this.#resetElectionTimeout();
    this.#progress.clear();
    this.#votes.clear();
    this.#transfer = undefined;
    this.#failReads();
    if (leader !== this.#leader && leader !== 0) {
      this.#logger.info("following leader", { id: this.#id, term, leader });
    }
    if (wasLeader) this.#logger.info("stepped down", { id: this.#id, term });
    this.#leader = leader;
  }

  #becomeLeader(): void {
    this.#role = "leader";
    this.#leader = this.#id;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#progress.clear();
    this.#syncProgress();
    this.#logger.info("became leader", {
      id: this.#id,
      term: this.#term,
      lastIndex: this.#log.lastIndex(),
    });
    // Section 8: a no-op of the new term lets earlier entries commit.
    this.#termStart = this.#appendOwn(EntryKind.Noop, "");
    this.#heartbeatWanted = true;
  }

  #resetElectionTimeout(): void {
    const spread = Math.floor(this.#random() * this.#electionTicks);
    this.#electionTimeout = this.#electionTicks + spread;
  }

  /** Whether a live leader was heard recently (dissertation 4.2.3). */
  #inLease(): boolean {
    if (this.#role === "leader") return true;
    return this.#leader !== 0 && this.#electionElapsed < this.#electionTicks;
  }

  // ------------------------------------------------------ message dispatch

  /** Handles a message of a newer term; false means drop it. */
  #higherTerm(message: Message): boolean {
    if (message.type === "vote") {
      if (message.pre) return true;
      if (this.#inLease() && !message.transfer) return false;
      this.#becomeFollower(message.term, 0);
      return true;
    }
    if (message.type === "voteResponse" && message.pre && message.granted) {
      return true;
    }
    const fromLeader = message.type === "append" ||
      message.type === "heartbeat";
    this.#becomeFollower(message.term, fromLeader ? message.from : 0);
    return true;
  }

  /** Answers a stale message so that its stale sender learns the term. */
  #lowerTerm(message: Message): void {
    if (message.type === "append" || message.type === "heartbeat") {
      this.#reject(message as AppendRequest, 0, 0);
    } else if (message.type === "vote") {
      this.#answerVote(message, false);
    }
  }

  #dispatch(message: Message): void {
    switch (message.type) {
      case "vote":
        return this.#handleVote(message);
      case "voteResponse":
        return this.#handleVoteResponse(message);
      case "append":
        return this.#handleAppend(message);
      case "appendResponse":
        return this.#handleAppendResponse(message);
      case "heartbeat":
        return this.#handleHeartbeat(message);
      case "heartbeatResponse":
        return this.#handleHeartbeatResponse(message);
      case "timeoutNow":
        return this.#handleTimeoutNow(message);
    }
  }

  // ------------------------------------------------------------ voting

  /** The leader hands over: campaign now, past the followers' lease. */
  #handleTimeoutNow(message: TimeoutNowRequest): void {
    if (this.#role !== "follower" || !this.#promotable()) return;
    this.#logger.info("taking over leadership", {
      id: this.#id,
      term: this.#term,
      from: message.from,
    });
    this.#campaign(false, true);
  }

  /** Section 5.2 and 5.4.1: one vote per term, only to up-to-date logs. */
  #handleVote(message: VoteRequest): void {
    const upToDate = this.#log.isUpToDate(message.lastIndex, message.lastTerm);
    if (message.pre) {
      const grant = message.term > this.#term && upToDate && !this.#inLease();
      this.#answerVote(message, grant);
      return;
    }
    const free = this.#vote === message.from ||
      (this.#vote === 0 && this.#leader === 0);
    const grant = free && upToDate;
    if (grant) {
      this.#vote = message.from;
      this.#electionElapsed = 0;
    }
    this.#answerVote(message, grant);
  }

  #answerVote(message: VoteRequest, granted: boolean): void {
    this.#messages.push({
      type: "voteResponse",
      from: this.#id,
      to: message.from,
      term: granted ? message.term : this.#term,
      pre: message.pre,
      granted,
    });
  }

  #handleVoteResponse(message: VoteResponse): void {
    const expected = message.pre ? "precandidate" : "candidate";
    if (this.#role !== expected) return;
    if (!this.membership.isVoter(message.from)) return;
    this.#votes.set(message.from, message.granted);
    this.#tallyVotes();
  }

  // ------------------------------------------------------- follower side

  /** Section 5.3: the consistency check, conflict repair and commit. */
  #handleAppend(message: AppendRequest): void {
    this.#followLeader(message.from);
    let { prevIndex, prevTerm, entries } = message;
    if (prevIndex < this.#commit) {
      // Committed entries match the leader's log; skip past them.
      entries = entries.filter((entry) => entry.index > this.#commit);
      prevIndex = this.#commit;
      prevTerm = this.#log.term(prevIndex) ?? -1;
    }
    const ownTerm = this.#log.term(prevIndex);
    if (ownTerm !== prevTerm) {
      const conflictTerm = ownTerm ?? 0;
      const conflictIndex = ownTerm === undefined
        ? this.#log.lastIndex() + 1
        : this.#log.firstIndexOfTerm(prevIndex);
      this.#reject(message, conflictTerm, conflictIndex);
      return;
    }
    this.#storeEntries(entries);
    const lastNew = prevIndex + entries.length;
    this.#advanceCommit(Math.min(message.commit, lastNew));
    this.#messages.push({
      type: "appendResponse",
      from: this.#id,
      to: message.from,
      term: this.#term,
      success: true,
      matchIndex: lastNew,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
    });
  }

  #followLeader(leader: NodeId): void {
    assert(
      this.#role !== "leader",
      `Two leaders in term ${this.#term}: ${this.#id} and ${leader}`,
    );
    if (this.#role !== "follower" || this.#leader !== leader) {
      this.#becomeFollower(this.#term, leader);
    }
    this.#electionElapsed = 0;
  }

  #storeEntries(entries: Entry[]): void {
    if (entries.length === 0) return;
    const conflict = this.#log.merge(entries);
    assert(
      conflict === 0 || conflict > this.#commit,
      `Leader overwrote committed entry ${conflict}: commit is ${this.#commit}`,
    );
    if (conflict > 0) this.#dropConfigsFrom(conflict);
    this.#loadConfigs(entries[0]!.index);
  }

  #reject(
    message: AppendRequest | HeartbeatRequest,
    conflictTerm: number,
    conflictIndex: number,
  ): void {
    this.#messages.push({
      type: "appendResponse",
      from: this.#id,
      to: message.from,
      term: this.#term,
      success: false,
      matchIndex: 0,
      rejectedIndex: message.type === "append" ? message.prevIndex : 0,
      conflictTerm,
      conflictIndex,
    });
  }

  #handleHeartbeat(message: HeartbeatRequest): void {
    this.#followLeader(message.from);
    this.#advanceCommit(Math.min(message.commit, this.#log.lastIndex()));
    this.#messages.push({
      type: "heartbeatResponse",
      from: this.#id,
      to: message.from,
      term: this.#term,
      round: message.round,
    });
  }

  #advanceCommit(index: number): void {
    if (index > this.#commit) this.#commit = index;
  }

  // --------------------------------------------------------- leader side

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#commitNoticeDue) {
      this.#commitNoticeDue = false;
      this.#appendsWanted = true;
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#heartbeatWanted = true;
    }
    if (this.#transfer && ++this.#transfer.elapsed >= this.#electionTicks) {
      this.#logger.info("hand-over timed out", { id: this.#id });
      this.#transfer = undefined;
    }
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#electionElapsed = 0;
      this.#checkQuorum();
    }
  }

  /** Steps down when a quorum went silent for an election timeout. */
  #checkQuorum(): void {
    const result = this.membership.quorum.voteResult((id) =>
      id === this.#id || (this.#progress.get(id)?.active ?? false)
    );
    for (const progress of this.#progress.values()) progress.active = false;
    if (result === "won") return;
    this.#logger.info("lost contact with a quorum", {
      id: this.#id,
      term: this.#term,
    });
    this.#becomeFollower(this.#term, 0);
  }

  #handleAppendResponse(message: AppendResponse): void {
    const progress = this.#progress.get(message.from);
    if (this.#role !== "leader" || !progress) return;
    progress.active = true;
    if (message.success) {
      const wasProbing = progress.state === "probe";
      progress.acknowledge(message.matchIndex);
      if (wasProbing) progress.replicate();
      this.#maybeTimeoutNow(message.from, progress);
      this.#maybeCommit();
      this.#sendAppend(message.from, progress, false);
      return;
    }
    if (!this.#backOff(progress, message)) return;
    this.#sendAppend(message.from, progress, false);
  }

  /** Applies a rejection's hint; false when the rejection is stale. */
  #backOff(progress: Progress, message: AppendResponse): boolean {
    const rejected = message.rejectedIndex;
    if (rejected <= progress.match) return false;
    if (progress.state === "probe" && rejected !== progress.next - 1) {
      return false;
    }
    let next = message.conflictIndex;
    if (message.conflictTerm > 0) {
      const last = this.#log.lastIndexOfTerm(message.conflictTerm, rejected);
      if (last > 0) next = last + 1;
    }
    progress.probe();
    progress.next = Math.max(Math.min(next, rejected), progress.match + 1);
    return true;
  }

  #handleHeartbeatResponse(message: HeartbeatResponse): void {
    const progress = this.#progress.get(message.from);
    if (this.#role !== "leader" || !progress) return;
    progress.active = true;
    progress.round = Math.max(progress.round, message.round);
    progress.probeSent = false;
    if (progress.inflight.length >= this.#inflightMax) {
      progress.inflight.shift();
    }
    if (progress.match < this.#log.lastIndex()) {
      // Even with nothing left to stream: an empty append finds out whether
      // entries in flight were lost (section 5.3: retry indefinitely).
      this.#sendAppend(message.from, progress, true);
    }
    this.#checkReads();
  }

  #appendOwn(kind: EntryKind, data: string): number {
    const index = this.#log.lastIndex() + 1;
    this.#log.append([{ index, term: this.#term, kind, data }]);
    if (kind === EntryKind.Config) this.#loadConfigs(index);
    this.#appendsWanted = true;
    return index;
  }

  /** Sends what a peer lacks, within the in-flight limits. */
  #sendAppend(id: NodeId, progress: Progress, allowEmpty: boolean): void {
    if (progress.state === "probe" && progress.probeSent) return;
    if (progress.inflight.length >= this.#inflightMax) return;
    const entries = this.#entriesFrom(progress.next);
    const last = progress.next + entries.length - 1;
    if (entries.length === 0 && !allowEmpty && progress.state !== "probe") {
      return;
    }
    const prevIndex = progress.next - 1;
    const prevTerm = this.#log.term(prevIndex);
    assert(prevTerm !== undefined, `No term at ${prevIndex} for ${id}`);
    this.#messagesNow.push({
      type: "append",
      from: this.#id,
      to: id,
      term: this.#term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.#commit,
    });
    if (progress.state === "probe") {
      progress.probeSent = true;
    } else if (entries.length > 0) {
      progress.next = last + 1;
      progress.inflight.push(last);
    }
  }

  /** The next batch to send from `next`, within both append limits. */
  #entriesFrom(next: number): Entry[] {
    const last = Math.min(
      this.#log.lastIndex(),
      next + this.#entriesPerAppendMax - 1,
    );
    const entries = this.#log.slice(next, last);
    let bytes = 0;
    for (let count = 0; count < entries.length; count++) {
      bytes += entries[count]!.data.length;
      if (bytes > this.#appendBytesMax && count > 0) {
        return entries.slice(0, count);
      }
    }
    return entries;
  }

  /** Section 5.4.2: count replicas only for entries of this term. */
  #maybeCommit(): void {
    const quorum = this.membership.quorum;
    const index = quorum.committedIndex((id) =>
      id === this.#id
        ? this.#log.persisted()
        : (this.#progress.get(id)?.match ?? 0)
    );
    if (index <= this.#commit) return;
    if (this.#log.term(index) !== this.#term) return;
    this.#commit = index;
    // Followers learn the new commit index from the next AppendEntries; an
    // empty one just for it would hold up the next proposal's, so it waits
    // for the next tick, except for followers that asked (noticeCommit).
    this.#commitNoticeDue = true;
    this.#sendNotices();
    this.#afterCommit();
    this.#checkReads();
  }

  /** Finishes a membership change once its entries commit. */
  #afterCommit(): void {
    const membership = this.membership;
    if (this.membershipIndex > this.#commit) return;
    if (membership.joint) {
      const data = Membership.encode({ members: membership.data.members });
      this.#appendOwn(EntryKind.Config, data);
      return;
    }
    if (!membership.isVoter(this.#id)) {
      this.#logger.info("left the cluster", { id: this.#id, term: this.#term });
      this.#becomeFollower(this.#term, 0);
    }
  }

  #broadcastHeartbeat(): void {
    this.#round++;
    for (const [id, progress] of this.#progress) {
      this.#messagesNow.push({
        type: "heartbeat",
        from: this.#id,
        to: id,
        term: this.#term,
        commit: Math.min(this.#commit, progress.match),
        round: this.#round,
      });
    }
  }

  #flush(): void {
    if (this.#role !== "leader") {
      this.#appendsWanted = false;
      this.#heartbeatWanted = false;
      return;
    }
    if (this.#heartbeatWanted) {
      this.#heartbeatWanted = false;
      this.#broadcastHeartbeat();
      this.#checkReads();
    }
    if (this.#appendsWanted) {
      this.#appendsWanted = false;
      for (const [id, progress] of this.#progress) {
        this.#sendAppend(id, progress, true);
      }
    }
  }

  // ------------------------------------------------------------ reads

  #checkReads(): void {
    if (this.#role !== "leader" || this.#commit < this.#termStart) return;
    const quorum = this.membership.quorum;
    while (this.#reads.length > 0) {
      const read = this.#reads[0]!;
      const acked = quorum.voteResult((id) =>
        id === this.#id || (this.#progress.get(id)?.round ?? 0) >= read.round
          ? true
          : undefined
      );
      if (acked !== "won") return;
      this.#reads.shift();
      this.#readsDone.push({ id: read.id, index: this.#commit });
    }
  }

  #failReads(): void {
    for (const read of this.#reads) {
      this.#readsDone.push({ id: read.id, index: null });
    }
    this.#reads = [];
  }

  // ------------------------------------------------------- configuration

  #bootstrap(members: Member[]): void {
    validateMembers(members);
    const data = Membership.encode({ members });
    this.#log.append([{ index: 1, term: 1, kind: EntryKind.Config, data }]);
    this.#term = Math.max(this.#term, 1);
    this.#commit = 1;
  }

  /** Records configuration entries from `from` on (section 6). */
  #loadConfigs(from: number): void {
    const before = this.membershipIndex;
    for (const entry of this.#log.slice(from, this.#log.lastIndex())) {
      if (entry.kind !== EntryKind.Config) continue;
      if (entry.index <= this.membershipIndex) continue;
      const membership = Membership.decode(entry.data);
      this.#configs.push({ index: entry.index, membership });
    }
    if (this.membershipIndex !== before) this.#membershipChanged();
  }

  /** Falls back to the previous configuration when entries are cut. */
  #dropConfigsFrom(index: number): void {
    const before = this.#configs.length;
    while ((this.#configs.at(-1)?.index ?? 0) >= index) this.#configs.pop();
    if (this.#configs.length !== before) this.#membershipChanged();
  }

  #membershipChanged(): void {
    const membership = this.membership;
    this.#logger.info("membership changed", {
      id: this.#id,
      index: this.membershipIndex,
      members: membership.data.members.map((member) => member.id),
      old: membership.data.old?.map((member) => member.id),
    });
    if (this.#role === "leader") this.#syncProgress();
  }

  /** Keeps one progress entry per voter and learner, none for others. */
  #syncProgress(): void {
    const voters = new Set(this.membership.quorum.all());
    for (const [id, progress] of this.#progress) {
      if (voters.has(id)) progress.learner = false;
      else if (!progress.learner) this.#progress.delete(id);
    }
    for (const id of voters) {
      if (id === this.#id || this.#progress.has(id)) continue;
      this.#progress.set(id, new Progress(this.#log.lastIndex() + 1));
    }
  }

  // ------------------------------------------------------------ helpers

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#commit };
  }

  #hardStateChanged(): boolean {
    return this.#saved.term !== this.#term ||
      this.#saved.vote !== this.#vote || this.#saved.commit !== this.#commit;
  }

  #applicable(): number {
    return Math.min(this.#commit, this.#log.persisted());
  }
}
