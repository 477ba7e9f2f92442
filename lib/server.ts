/**
 * The lilraft server: the public object that drives the pure Raft core with
 * real storage, a transport, timers and the user's context.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import {
  EntryWaiters,
  type Outcome,
  type Placement,
} from "./_entry_waiters.ts";
import { MembershipChange } from "./_membership_change.ts";
import { ConditionWaiters, withDeadline } from "./_waiting.ts";
import {
  asError,
  causeChain,
  checkPlacement,
  reviveError,
} from "./_wire_errors.ts";
import { type Clock, systemClock } from "./clock.ts";
import { type Command, type CommandClass, CommandRegistry } from "./command.ts";
import type { Config } from "./config.ts";
import { Membership, validateMembers } from "./core/membership.ts";
import { NotLeaderError, RaftCore, type Ready } from "./core/raft.ts";
import {
  type Entry,
  EntryKind,
  type HardState,
  type Member,
  type Message,
  type NodeId,
} from "./core/types.ts";
import { NoLeaderError, StoppedError, TimedOutError } from "./errors.ts";
import { type Logger, silentLogger } from "./logger.ts";
import {
  type ResolvedOptions,
  resolveOptions,
  type ServerOptions,
  type ServerStatus,
  type StartOptions,
} from "./server_options.ts";
import { FileStorage } from "./storage/file.ts";
import type { Storage } from "./storage/storage.ts";
import { HttpTransport } from "./transport/http.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
} from "./transport/transport.ts";

export type {
  MemberStatus,
  ServerOptions,
  ServerStatus,
  StartOptions,
} from "./server_options.ts";

/**
 * Internal: the key of the method through which lilraft's simulator
 * (`lib/testing.ts`) reads a server's Raft core (log, term, commit) to check
 * safety properties. Not exported from `mod.ts`; not a public API.
 */
export const inspectCore: unique symbol = Symbol("lilraft.inspectCore");

/**
 * One node of a lilraft cluster, replicating the context `C`.
 *
 * @example A single-node cluster
 * ```ts ignore
 * const server = new Server(1, [] as number[], config, "data/1/");
 * server.registerCommand(AppendCommand);
 * server.setHttpTransport(8787);
 * await server.start({ recover: false });
 * await server.exec(new AppendCommand(7));
 * await server.stop();
 * ```
 */
export class Server<C> {
  readonly #id: NodeId;
  readonly #context: C;
  readonly #config: Config;
  readonly #dataPath: string;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #registry = new CommandRegistry<C>();

  #transport: Transport | undefined;
  #storage: Storage | undefined;
  #core: RaftCore | undefined;
  #state: "new" | "starting" | "running" | "stopped" | "failed" = "new";
  #failure: Error | undefined;
  #applied = 0;
  #savedApplied = -1;
  #savedHardState: HardState = { term: 0, vote: 0, commit: 0 };
  #deferredHardState: HardState | undefined;
  #ticker: unknown;
  #listenPort: { port: number; hostname: string } | undefined;

  #busy = false;
  #loop: Promise<void> = Promise.resolve();
  readonly #entryWaiters: EntryWaiters;
  readonly #conditions: ConditionWaiters;
  readonly #membershipChange: MembershipChange;
  #reads = new Map<number, (index: number | null) => void>();
  #readSequence = 0;
  #peersIndex = -1;
  #peerIds = new Set<NodeId>();
  #cluster: string | undefined;

  /**
   * Creates a node; nothing runs until {@linkcode Server.start}.
   *
   * @param id This node's id; must appear in `config` unless joining.
   * @param context The object commands are applied to.
   * @param config The nodes of the cluster.
   * @param dataPath Directory for the write-ahead log.
   * @param options Tuning and dependencies.
   * @throws {TypeError} on an invalid id, or one missing from `config`.
   * @throws {RangeError} on invalid timing options.
   */
  constructor(
    id: NodeId,
    context: C,
    config: Config,
    dataPath: string,
    options: ServerOptions = {},
  ) {
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new TypeError(`Invalid server id ${id}: expected an integer > 0`);
    }
    this.#options = resolveOptions(options);
    if (!options.join && !config.nodes.some((node) => node.id === id)) {
      throw new TypeError(
        `Invalid server id ${id}: not in the configuration ` +
          `(${config.nodes.map((node) => node.id).join(", ")})`,
      );
    }
    this.#id = id;
    this.#context = context;
    this.#config = config;
    this.#dataPath = dataPath;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#transport = options.transport;
    this.#storage = options.storage;
    this.#entryWaiters = new EntryWaiters({
      clock: this.#clock,
      appliedIndex: () => this.#applied,
      timeoutMs: this.#options.execTimeoutMs,
    });
    this.#conditions = new ConditionWaiters(this.#clock);
    this.#membershipChange = this.#createMembershipChange();
  }

  /** The context commands are applied to. */
  get context(): C {
    return this.#context;
  }

  /** This node's id. */
  get id(): NodeId {
    return this.#id;
  }

  /**
   * Registers a command class so that its entries can be applied. Every
   * node must register the same classes before `start`.
   *
   * @throws {TypeError} when the name is already registered.
   */
  registerCommand(commandClass: CommandClass<C>): void {
    this.#registry.register(commandClass);
  }

  /**
   * Uses HTTP between nodes, listening on `port` once started. The host is
   * taken from this node's URL in the configuration.
   *
   * @param port The TCP port to listen on.
   * @param hostname Overrides the host to listen on.
   */
  setHttpTransport(port: number, hostname?: string): void {
    this.#httpTransport();
    const own = this.#config.nodes.find((node) => node.id === this.#id);
    const host = hostname ?? (own ? new URL(own.url).hostname : "127.0.0.1");
    this.#listenPort = { port, hostname: host.replace(/^\[|\]$/g, "") };
  }

  /**
   * A fetch-style handler answering the peer routes under `/raft/`, for
   * mounting the node in an existing `Deno.serve` application. Other paths
   * get 404.
   */
  get handler(): (request: Request) => Promise<Response> {
    return this.#httpTransport().handler;
  }

  /**
   * Loads the Raft state, joins the cluster and starts the clock.
   *
   * @throws {DataPathLockedError} when another server uses the data path.
   * @throws {CorruptLogError} when the write-ahead log is damaged.
   */
  async start(options: StartOptions = {}): Promise<void> {
    if (this.#state !== "new") {
      throw new TypeError(`Cannot start server ${this.#id}: ${this.#state}`);
    }
    this.#state = "starting";
    try {
      await this.#load(options.recover ?? false);
      await this.#drain();
      await this.#startTransport();
    } catch (error) {
      // Leave nothing behind: no lock, no listener, no timers.
      this.#state = "stopped";
      await this.#transport?.stop();
      await this.#storage?.close().catch(() => {});
      throw error;
    }
    this.#state = "running";
    this.#scheduleTick();
  }

  async #load(recover: boolean): Promise<void> {
    this.#storage ??= new FileStorage(this.#dataPath, {
      logger: this.#logger,
    });
    const stored = await this.#storage.open();
    this.#savedHardState = stored.hardState;
    const { applied, hardState, entries } = stored;
    this.#applied = recover
      ? 0
      : Math.min(applied, hardState.commit, entries.length);
    this.#core = this.#createCore(stored, this.#applied);
    this.#logger.info("loaded raft state", {
      id: this.#id,
      term: stored.hardState.term,
      commit: stored.hardState.commit,
      lastIndex: stored.entries.length,
      applied: stored.applied,
      recover,
    });
  }

  /**
   * Stops the node: timers, transport and storage. Pending operations
   * reject with {@linkcode StoppedError}. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopped" || this.#state === "new") {
      this.#state = "stopped";
      return;
    }
    if (this.#state === "running") await this.#handOver();
    const failed = this.#state === "failed";
    this.#state = "stopped";
    this.#clock.clearTimer(this.#ticker);
    await this.#loop;
    this.#rejectAll(new StoppedError(`Server ${this.#id} stopped`));
    await this.#transport?.stop();
    const deferred = this.#deferredHardState;
    if (!failed && (deferred || this.#applied !== this.#savedApplied)) {
      const batch = {
        applied: this.#applied,
        ...deferred && { hardState: deferred },
      };
      await this.#storage?.save(batch).catch(() => {});
    }
    await this.#storage?.close();
    this.#logger.info("stopped", { id: this.#id, applied: this.#applied });
  }

  /**
   * Internal, for the simulator only: the Raft core once started.
   *
   * @ignore
   */
  [inspectCore](): RaftCore | undefined {
    return this.#core;
  }

  /**
   * A leader about to stop hands leadership to an up-to-date follower
   * first, then waits (briefly) until its own pending entries are applied,
   * so that a planned stop costs no election timeout.
   */
  async #handOver(): Promise<void> {
    const core = this.#core!;
    const lastIndex = core.lastIndex;
    if (core.transferLeadership() === 0) return;
    this.#kick();
    const patience = 2 * this.#options.electionTimeoutMs;
    await this.#waitFor(
      () => {
        if (core.role === "leader") return !core.handingOver;
        return core.leader !== 0 && this.#applied >= lastIndex;
      },
      patience,
      () => new TimedOutError("Leadership hand-over did not finish in time"),
    ).catch(() => {});
  }

  /** The node's state, for operators and tests. */
  status(): ServerStatus {
    const core = this.#core;
    const membership = core?.membership ?? Membership.empty();
    const role = this.#state === "failed" || this.#state === "stopped"
      ? this.#state
      : core?.role ?? "follower";
    return {
      id: this.#id,
      role,
      term: core?.term ?? 0,
      leader: core?.leader || null,
      commitIndex: core?.commit ?? 0,
      appliedIndex: this.#applied,
      lastLogIndex: core?.lastIndex ?? 0,
      members: membership.data.members.map(({ id, url }) => ({ id, url })),
      oldMembers: (membership.data.old ?? []).map(({ id, url }) => ({
        id,
        url,
      })),
      failure: this.#failure?.message ?? null,
    };
  }

  /**
   * Replicates `command` and resolves with what its `apply` returned on
   * the leader, once it is committed and applied there. On a follower the
   * command is forwarded to the leader.
   *
   * @throws {TypeError} when the command is not registered.
   * @throws {RangeError} when the encoded command is over `entryBytesMax`.
   * @throws {NoLeaderError} when no leader could be reached in time.
   * @throws {NotCommittedError} when a new leader overwrote the entry.
   * @throws {TimedOutError} when the outcome is unknown at the deadline.
   * @throws {StoppedError} when the server stops first.
   * @throws Whatever `apply` threw.
   */
  exec<R>(command: Command<C, R>): Promise<R> {
    const name = command.name();
    if (!this.#registry.has(name)) {
      return Promise.reject(
        new TypeError(`Cannot exec command "${name}": it is not registered`),
      );
    }
    return this.#execute(name, command) as Promise<R>;
  }

  /**
   * Runs `query` on the context once it reflects every write committed
   * before the call (a linearizable read, section 6.4 ReadIndex): the
   * leader confirms its leadership with a heartbeat round, then this node
   * waits until it has applied up to the leader's commit index. On a
   * follower only the index comes from the leader; the query runs here.
   *
   * @throws {NoLeaderError} when no leader could confirm in time.
   * @throws {TimedOutError} when the deadline passes.
   * @throws {StoppedError} when the server stops first.
   */
  async read<R>(query: (context: C) => R): Promise<R> {
    const index = await this.#leaderCall(
      () => this.#readIndex(),
      { kind: "readIndex" },
    ) as number;
    await this.#waitFor(
      () => this.#applied >= index,
      this.#options.execTimeoutMs,
      () => new TimedOutError(`Read timed out waiting to apply ${index}`),
    );
    return query(this.#context);
  }

  /**
   * Changes the membership to exactly `nodes` by joint consensus (section
   * 6): new nodes first catch up as learners, then C_old,new and C_new are
   * committed in turn. Resolves once C_new is committed. On a follower the
   * change is forwarded to the leader.
   *
   * @throws {TypeError} on an empty list, duplicate ids or URLs, bad ids.
   * @throws {ConfigChangeError} while another change is in progress, or
   *   when a new node does not catch up in time (nothing is changed).
   */
  async setConfig(...nodes: Member[]): Promise<void> {
    const members = nodes.map(({ id, url }) => ({ id, url }));
    validateMembers(members, "configuration");
    await this.#leaderCall(
      () => this.#membershipChange.change(this.#core!, members),
      { kind: "config", members },
    );
  }

  // ------------------------------------------------------------- plumbing

  #createCore(
    stored: Awaited<ReturnType<Storage["open"]>>,
    applied: number,
  ): RaftCore {
    const { tickMs, electionTimeoutMs, heartbeatIntervalMs } = this.#options;
    return new RaftCore({
      id: this.#id,
      hardState: stored.hardState,
      entries: stored.entries,
      applied,
      bootstrap: this.#options.join ? undefined : this.#config.members(),
      electionTicks: Math.round(electionTimeoutMs / tickMs),
      heartbeatTicks: Math.max(1, Math.round(heartbeatIntervalMs / tickMs)),
      random: this.#options.random ?? Math.random,
      logger: this.#logger,
      inflightMax: this.#options.inflightMax,
      entriesPerAppendMax: this.#options.entriesPerAppendMax,
    });
  }

  #createMembershipChange(): MembershipChange {
    return new MembershipChange({
      id: this.#id,
      logger: this.#logger,
      options: this.#options,
      kick: () => this.#kick(),
      waitFor: (ready, timeoutMs, timeout) =>
        this.#waitFor(ready, timeoutMs, timeout),
      invalidatePeers: () => {
        this.#peersIndex = -1;
      },
      updatePeers: () => this.#updatePeers(),
    });
  }

  #httpTransport(): HttpTransport {
    if (this.#transport instanceof HttpTransport) return this.#transport;
    if (this.#transport) {
      throw new TypeError("Cannot use HTTP: another transport is set");
    }
    const transport = new HttpTransport({ logger: this.#logger });
    this.#transport = transport;
    return transport;
  }

  async #startTransport(): Promise<void> {
    const transport = this.#transport ?? this.#httpTransport();
    this.#peersIndex = -1;
    this.#updatePeers();
    await transport.start(this.#id, {
      accepts: (from, cluster) =>
        this.#knows(from) ||
        (cluster !== undefined && cluster === this.#clusterId()),
      clusterId: () => this.#clusterId(),
      address: () => this.#address(),
      receive: (messages) => this.#receive(messages),
      forward: (request) => this.#serveForward(request),
      unreachable: (id) => this.#core?.reportUnreachable(id),
    });
    if (this.#listenPort && transport instanceof HttpTransport) {
      await transport.listen(this.#listenPort.port, this.#listenPort.hostname);
    }
  }

  /**
   * Identifies the cluster by its founding configuration (entry 1), so that
   * a node which missed membership changes still accepts the members that
   * were added meanwhile, while strangers stay refused.
   */
  #clusterId(): string | undefined {
    const core = this.#core;
    if (!core || core.lastIndex < 1) return undefined;
    const [first] = core.entries(1, 1);
    if (first?.kind !== EntryKind.Config) return undefined;
    this.#cluster ??= crc32(first.data).toString(16).padStart(8, "0");
    return this.#cluster;
  }

  #address(): string | undefined {
    const members = this.#core?.membership.members() ?? [];
    const own = [...members, ...this.#config.nodes].find((node) =>
      node.id === this.#id
    );
    return own?.url;
  }

  /** Whether `id` is in the address book the transport was last given. */
  #knows(id: NodeId): boolean {
    return this.#peerIds.has(id);
  }

  #updatePeers(): void {
    const core = this.#core;
    if (!core || core.membershipIndex === this.#peersIndex) return;
    this.#peersIndex = core.membershipIndex;
    const byId = new Map<NodeId, Member>();
    for (const node of this.#config.members()) byId.set(node.id, node);
    for (const member of core.membership.members()) byId.set(member.id, member);
    const learners = this.#membershipChange.learners;
    for (const member of learners.values()) byId.set(member.id, member);
    byId.delete(this.#id);
    this.#peerIds = new Set(byId.keys());
    this.#transport?.setPeers([...byId.values()]);
  }

  #receive(messages: Message[]): void {
    const core = this.#core;
    if (!core || this.#state !== "running") return;
    try {
      for (const message of messages) core.step(message);
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#kick();
  }

  #scheduleTick(): void {
    this.#ticker = this.#clock.setTimer(() => {
      if (this.#state !== "running") return;
      try {
        this.#core!.tick();
      } catch (error) {
        this.#fail(error);
        return;
      }
      this.#conditions.check();
      this.#kick();
      this.#scheduleTick();
    }, this.#options.tickMs);
  }

  /** Runs the Ready loop, or flushes leader messages while it is busy. */
  #kick(): void {
    const core = this.#core;
    if (!core || this.#state === "failed") return;
    if (this.#busy) {
      const now = core.takeMessagesNow();
      if (now.length > 0) this.#transport?.send(now);
      return;
    }
    if (!core.hasReady()) return;
    this.#busy = true;
    this.#loop = this.#runReady().finally(() => {
      this.#busy = false;
      // Work that arrived after the loop's last check must not wait a tick.
      if (this.#state !== "stopped") this.#kick();
    });
  }

  async #drain(): Promise<void> {
    this.#kick();
    await this.#loop;
  }

  /** Persist, then send, then apply: the order the core requires. */
  async #runReady(): Promise<void> {
    const core = this.#core!;
    try {
      while (core.hasReady() && this.#state !== "failed") {
        const ready = core.ready();
        if (ready.messagesNow.length > 0) {
          this.#transport?.send(ready.messagesNow);
        }
        await this.#persist(ready);
        if (ready.messages.length > 0) this.#transport?.send(ready.messages);
        this.#apply(ready.committed);
        this.#answerReads(ready);
        core.advance(ready);
        this.#updatePeers();
        this.#conditions.check();
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  async #persist(ready: Ready): Promise<void> {
    if (ready.entries.length === 0 && this.#onlyCommitMoved(ready.hardState)) {
      // The commit index is volatile state (Figure 2): an entry is
      // committed once durable on a quorum, whatever this node stored. It
      // rides along with the next save instead of costing an fsync of its
      // own before the entries can be applied.
      this.#deferredHardState = ready.hardState!;
      return;
    }
    if (!ready.hardState && ready.entries.length === 0) return;
    const hardState = ready.hardState ?? this.#deferredHardState;
    const batch: Parameters<Storage["save"]>[0] = {
      entries: ready.entries,
      applied: this.#applied,
    };
    if (hardState) batch.hardState = hardState;
    this.#deferredHardState = undefined;
    await this.#storage!.save(batch);
    if (hardState) this.#savedHardState = hardState;
    this.#savedApplied = batch.applied ?? this.#savedApplied;
  }

  /** Whether `hardState` differs from the durable one in commit only. */
  #onlyCommitMoved(hardState: HardState | null): boolean {
    if (!hardState) return false;
    const saved = this.#savedHardState;
    return hardState.term === saved.term && hardState.vote === saved.vote;
  }

  #apply(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.index !== this.#applied + 1) {
        throw new Error(
          `Cannot apply entry ${entry.index}: applied index is ${this.#applied}`,
        );
      }
      const outcome = entry.kind === EntryKind.Command
        ? this.#applyCommand(entry)
        : { ok: true as const, value: undefined };
      this.#applied = entry.index;
      this.#entryWaiters.settle(entry, outcome);
    }
  }

  #applyCommand(entry: Entry): Outcome {
    let command: Command<C, unknown>;
    try {
      command = this.#registry.decode(entry.data);
    } catch (error) {
      // Skipping an entry would make this replica diverge: stop instead.
      throw new Error(
        `Cannot apply entry ${entry.index} (term ${entry.term}): ` +
          `${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      return { ok: true, value: command.apply(this.#context) };
    } catch (error) {
      return { ok: false, error: asError(error) };
    }
  }

  #answerReads(ready: Ready): void {
    for (const read of ready.reads) {
      const answer = this.#reads.get(read.id);
      this.#reads.delete(read.id);
      answer?.(read.index);
    }
  }

  #fail(error: unknown): void {
    if (this.#state === "failed" || this.#state === "stopped") return;
    this.#state = "failed";
    this.#failure = asError(error);
    this.#clock.clearTimer(this.#ticker);
    this.#logger.error("server failed and stopped", {
      id: this.#id,
      error: this.#failure.message,
    });
    this.#rejectAll(
      new StoppedError(`Server ${this.#id} failed: ${this.#failure.message}`, {
        cause: this.#failure,
      }),
    );
    this.#transport?.stop();
  }

  #rejectAll(error: Error): void {
    this.#entryWaiters.rejectAll(error);
    for (const answer of this.#reads.values()) answer(null);
    this.#reads.clear();
    this.#conditions.rejectAll(error);
  }

  // ---------------------------------------------------- leader operations

  /**
   * Runs `local` when this node leads, else forwards `request` to the
   * leader; retries while leadership is moving, until the deadline.
   */
  async #leaderCall(
    local: () => Promise<unknown>,
    request: ForwardRequest,
  ): Promise<unknown> {
    const deadline = this.#clock.now() + this.#options.execTimeoutMs;
    while (true) {
      this.#checkRunning();
      const core = this.#core!;
      try {
        if (core.role === "leader") return await local();
        if (core.leader !== 0) {
          return await this.#forward(core.leader, request, deadline);
        }
      } catch (error) {
        if (!(error instanceof NotLeaderError)) throw error;
      }
      await this.#waitForLeader(deadline);
    }
  }

  async #waitForLeader(deadline: number): Promise<void> {
    const known = this.#core!.leader;
    const remaining = deadline - this.#clock.now();
    await this.#waitFor(
      () => {
        const leader = this.#core!.leader;
        return leader !== 0 && leader !== known;
      },
      remaining,
      () => new NoLeaderError(`No leader is known to node ${this.#id}`),
    );
  }

  async #forward(
    leader: NodeId,
    request: ForwardRequest,
    deadline: number,
  ): Promise<unknown> {
    const remaining = Math.max(1, deadline - this.#clock.now());
    let reply: ForwardReply;
    try {
      reply = await this.#transport!.forward(leader, request, remaining);
    } catch (error) {
      if (this.#clock.now() >= deadline) {
        throw new TimedOutError(
          `Forwarding to leader ${leader} timed out: outcome unknown`,
          { cause: error },
        );
      }
      if (request.kind === "exec") {
        // Unless the connection was refused, the request may have reached
        // the leader: do not send it twice, and do not claim it failed.
        const message = (error as Error).message;
        const ErrorClass = /connection refused/i.test(causeChain(error))
          ? NoLeaderError
          : TimedOutError;
        throw new ErrorClass(
          `Leader ${leader} could not be reached: ${message}`,
          { cause: error },
        );
      }
      throw new NotLeaderError(0);
    }
    if (reply.ok) return reply.value;
    if (reply.error.name === "NotLeaderError") throw new NotLeaderError(0);
    throw reviveError(reply.error);
  }

  async #serveForward(request: ForwardRequest): Promise<ForwardReply> {
    try {
      if (this.#state !== "running" || this.#core?.role !== "leader") {
        throw new NotLeaderError(this.#core?.leader ?? 0);
      }
      const value = await this.#serveLocal(request);
      return { ok: true, value };
    } catch (error) {
      const { name, message } = asError(error);
      return { ok: false, error: { name, message } };
    }
  }

  #serveLocal(request: ForwardRequest): Promise<unknown> {
    switch (request.kind) {
      case "exec":
        if (!this.#registry.has(request.name)) {
          throw new TypeError(
            `Cannot exec command "${request.name}": it is not registered`,
          );
        }
        return Promise.resolve(this.#serveExec(request));
      case "readIndex":
        return this.#readIndex();
      case "config":
        validateMembers(request.members, "configuration");
        return this.#membershipChange.change(this.#core!, request.members);
    }
  }

  /**
   * Has the leader (this node, or the one a forward reaches) place the
   * command in its log, then waits until this node applies that very entry
   * (index and term) and answers with its own `apply` result. A follower
   * thus learns the exact outcome even if the leader stops meanwhile.
   */
  async #execute(name: string, command: unknown): Promise<unknown> {
    const deadline = this.#clock.now() + this.#options.execTimeoutMs;
    const data = this.#encode(name, command);
    const placed = await this.#leaderCall(
      () => Promise.resolve(this.#propose(data)),
      { kind: "exec", name, payload: command, from: this.#id },
    );
    return await this.#entryWaiters.wait(checkPlacement(placed), deadline);
  }

  /**
   * Encodes a command as entry data.
   *
   * @throws {RangeError} when it is over `entryBytesMax`: an entry too large
   *   for one AppendEntries request could never be replicated.
   */
  #encode(name: string, payload: unknown): string {
    const data = this.#registry.encode(name, payload);
    const limit = this.#options.entryBytesMax;
    if (data.length > limit) {
      throw new RangeError(
        `Cannot exec command "${name}": its encoding is ${data.length} ` +
          `characters, over entryBytesMax (${limit})`,
      );
    }
    return data;
  }

  /** Places a forwarded command; its sender hears of the commit at once. */
  #serveExec(request: ForwardRequest & { kind: "exec" }): Placement {
    const placement = this.#propose(
      this.#encode(request.name, request.payload),
    );
    if (request.from) this.#core!.noticeCommit(request.from, placement.index);
    return placement;
  }

  #propose(data: string): Placement {
    const placement = this.#core!.propose(data);
    this.#kick();
    return placement;
  }

  #readIndex(): Promise<number> {
    const id = ++this.#readSequence;
    this.#core!.readIndex(id);
    const index = new Promise<number>((resolve, reject) => {
      this.#reads.set(id, (index) => {
        if (index === null) {
          reject(new NoLeaderError("Leadership was lost during the read"));
        } else resolve(index);
      });
    });
    this.#kick();
    const timeoutMs = this.#options.execTimeoutMs;
    return withDeadline(this.#clock, index, timeoutMs, () => {
      this.#reads.delete(id);
      return new TimedOutError("Leadership was not confirmed in time");
    });
  }

  // -------------------------------------------------------------- waiting

  #waitFor(
    ready: () => boolean,
    timeoutMs: number,
    timeout: () => Error,
  ): Promise<void> {
    if (ready()) return Promise.resolve();
    this.#checkRunning();
    return this.#conditions.wait(ready, timeoutMs, timeout);
  }

  #checkRunning(): void {
    if (this.#state === "running") return;
    const reason = this.#failure ? `failed: ${this.#failure.message}` : "";
    throw new StoppedError(
      `Server ${this.#id} is not running: ${reason || this.#state}`,
    );
  }
}
