/**
 * The lilraft server: the public object that drives the pure Raft core with
 * real storage, a transport, timers and the user's context.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { type Clock, systemClock } from "./clock.ts";
import { type Command, type CommandClass, CommandRegistry } from "./command.ts";
import type { Config } from "./config.ts";
import { Membership, validateMembers } from "./core/membership.ts";
import {
  NotLeaderError,
  RaftCore,
  type Ready,
  type Role,
} from "./core/raft.ts";
import {
  type Entry,
  EntryKind,
  type HardState,
  type Member,
  type Message,
  type NodeId,
} from "./core/types.ts";
import {
  ConfigChangeError,
  forwardableErrors,
  LilraftError,
  NoLeaderError,
  NotCommittedError,
  StoppedError,
  TimedOutError,
} from "./errors.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { FileStorage } from "./storage/file.ts";
import type { Storage } from "./storage/storage.ts";
import { HttpTransport } from "./transport/http.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
} from "./transport/transport.ts";

/** Tuning and dependencies of a {@linkcode Server}; all optional. */
export interface ServerOptions {
  /** Where role, membership and recovery events go. Default: silent. */
  logger?: Logger;
  /** Minimum election timeout; the actual one is in [t, 2t). Default 150. */
  electionTimeoutMs?: number;
  /** Interval between leader heartbeats. Default 50. */
  heartbeatIntervalMs?: number;
  /** Resolution of the Raft clock. Default 10. */
  tickMs?: number;
  /** How long `exec`, `read` and forwarding may take. Default 5000. */
  execTimeoutMs?: number;
  /** How long a new member may take to catch up. Default 10000. */
  catchUpTimeoutMs?: number;
  /**
   * Join an existing cluster instead of founding one: the node writes no
   * initial configuration and never campaigns until a leader adds it with
   * {@linkcode Server.setConfig}. Default false.
   */
  join?: boolean;
  /** Storage to use instead of the write-ahead log under the data path. */
  storage?: Storage;
  /** Transport to use instead of HTTP. */
  transport?: Transport;
  /** Clock to use instead of the system clock. */
  clock?: Clock;
  /** Random source in [0, 1) for election timeouts. Default Math.random. */
  random?: () => number;
  /** AppendEntries requests in flight per follower. Default 32. */
  inflightMax?: number;
  /** Entries per AppendEntries request. Default 512. */
  entriesPerAppendMax?: number;
  /**
   * Largest encoded command, in characters; `exec` of a larger one throws
   * `RangeError`. Default 8 MiB, well under the transport's body limit.
   */
  entryBytesMax?: number;
}

/** Options of {@linkcode Server.start}. */
export interface StartOptions {
  /**
   * Rebuild the context by applying every committed entry in the log
   * before `start` resolves. When false, the context is taken as it is and
   * entries applied before the last clean stop are not applied again.
   */
  recover?: boolean;
}

/** A member as {@linkcode ServerStatus} reports it. */
export interface MemberStatus {
  /** The member's id. */
  id: NodeId;
  /** The member's URL. */
  url: string;
}

/** A snapshot of a server's state, for operators and tests. */
export interface ServerStatus {
  /** This node's id. */
  id: NodeId;
  /** The Raft role, or "stopped" / "failed". */
  role: Role | "stopped" | "failed";
  /** The current term. */
  term: number;
  /** The leader as far as known, or null. */
  leader: NodeId | null;
  /** Highest committed index known here. */
  commitIndex: number;
  /** Highest index applied to the context. */
  appliedIndex: number;
  /** Index of the last log entry. */
  lastLogIndex: number;
  /** Voters of the configuration in force (the new set while joint). */
  members: MemberStatus[];
  /** Voters of the outgoing set during a joint change, else empty. */
  oldMembers: MemberStatus[];
  /** Why the server failed, when it did. */
  failure: string | null;
}

/** Where a leader placed a proposal. */
interface Placement {
  index: number;
  term: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error };

/** How many applied entries keep their outcome for late waiters. */
const recentOutcomesMax = 4096;

interface PendingExec {
  term: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Waiter {
  ready(): boolean;
  deadline: number;
  resolve(): void;
  reject(error: Error): void;
  timeout(): Error;
}

/**
 * Internal: the key of the method through which lilraft's simulator
 * (`lib/testing.ts`) reads a server's Raft core (log, term, commit) to check
 * safety properties. Not exported from `mod.ts`; not a public API.
 */
export const inspectCore: unique symbol = Symbol("lilraft.inspectCore");

const defaults = {
  electionTimeoutMs: 150,
  heartbeatIntervalMs: 50,
  tickMs: 10,
  execTimeoutMs: 5000,
  catchUpTimeoutMs: 10000,
  entryBytesMax: 8 * 1024 * 1024,
};

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
  readonly #options: ServerOptions & typeof defaults;
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
  /**
   * Callers waiting for the entry at an index. Several can wait at one
   * index (placed there by leaders of different terms): the entry that is
   * finally applied there decides each of them.
   */
  #pending = new Map<number, PendingExec[]>();
  #recent: ({ index: number; term: number; outcome: Outcome } | undefined)[] =
    [];
  #reads = new Map<number, (index: number | null) => void>();
  #readSequence = 0;
  #waiters = new Set<Waiter>();
  #learners = new Map<NodeId, Member>();
  #changing = false;
  #peersIndex = -1;
  #cluster: string | undefined;

  /**
   * Creates a node; nothing runs until {@linkcode Server.start}.
   *
   * @param id This node's id; must appear in `config` unless joining.
   * @param context The object commands are applied to.
   * @param config The nodes of the cluster.
   * @param dataPath Directory for the write-ahead log.
   * @param options Tuning and dependencies.
   * @throws {TypeError} on an invalid id or timing options.
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
    this.#options = { ...defaults, ...options };
    checkTiming(this.#options);
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

  /** Internal, for the simulator only: the Raft core once started. */
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
      () => this.#changeMembership(members),
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

  #knows(id: NodeId): boolean {
    if (this.#config.nodes.some((node) => node.id === id)) return true;
    if (this.#learners.has(id)) return true;
    return this.#core?.membership.members().some((m) => m.id === id) ?? false;
  }

  #updatePeers(): void {
    const core = this.#core;
    if (!core || core.membershipIndex === this.#peersIndex) return;
    this.#peersIndex = core.membershipIndex;
    const byId = new Map<NodeId, Member>();
    for (const node of this.#config.members()) byId.set(node.id, node);
    for (const member of core.membership.members()) byId.set(member.id, member);
    for (const member of this.#learners.values()) byId.set(member.id, member);
    byId.delete(this.#id);
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
      this.#checkWaiters();
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
        this.#checkWaiters();
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
      this.#settle(entry, outcome);
    }
  }

  #applyCommand(entry: Entry): { ok: true; value: unknown } | {
    ok: false;
    error: Error;
  } {
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

  #settle(entry: Entry, outcome: Outcome): void {
    this.#recent[entry.index % recentOutcomesMax] = {
      index: entry.index,
      term: entry.term,
      outcome,
    };
    const waiting = this.#pending.get(entry.index) ?? [];
    this.#pending.delete(entry.index);
    for (const pending of waiting) {
      if (pending.term !== entry.term) {
        pending.reject(notCommitted(entry.index, entry.term));
      } else if (outcome.ok) {
        pending.resolve(outcome.value);
      } else {
        pending.reject(outcome.error);
      }
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
    for (const waiting of this.#pending.values()) {
      for (const pending of waiting) pending.reject(error);
    }
    this.#pending.clear();
    for (const answer of this.#reads.values()) answer(null);
    this.#reads.clear();
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
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
        return Promise.resolve(
          this.#propose(this.#encode(request.name, request.payload)),
        );
      case "readIndex":
        return this.#readIndex();
      case "config":
        validateMembers(request.members, "configuration");
        return this.#changeMembership(request.members);
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
      { kind: "exec", name, payload: command },
    );
    const { index, term } = checkPlacement(placed);
    return await this.#awaitEntry(index, term, deadline);
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

  #propose(data: string): Placement {
    const placement = this.#core!.propose(data);
    this.#kick();
    return placement;
  }

  #awaitEntry(index: number, term: number, deadline: number): Promise<unknown> {
    if (index <= this.#applied) return this.#pastOutcome(index, term);
    let pending: PendingExec;
    const result = new Promise<unknown>((resolve, reject) => {
      pending = { term, resolve, reject };
      const waiting = this.#pending.get(index);
      if (waiting) waiting.push(pending);
      else this.#pending.set(index, [pending]);
    });
    const remaining = Math.max(0, deadline - this.#clock.now());
    return this.#withDeadline(result, remaining, () => {
      const waiting = this.#pending.get(index) ?? [];
      const rest = waiting.filter((other) => other !== pending);
      if (rest.length > 0) this.#pending.set(index, rest);
      else this.#pending.delete(index);
      return new TimedOutError(
        `Command at index ${index} was not applied within ` +
          `${this.#options.execTimeoutMs} ms: outcome unknown`,
      );
    });
  }

  /** The outcome of an entry applied before its caller started waiting. */
  #pastOutcome(index: number, term: number): Promise<unknown> {
    const recent = this.#recent[index % recentOutcomesMax];
    if (recent?.index !== index) {
      return Promise.reject(
        new TimedOutError(
          `Entry ${index} was applied too long ago to report: outcome unknown`,
        ),
      );
    }
    if (recent.term !== term) {
      return Promise.reject(notCommitted(index, recent.term));
    }
    return recent.outcome.ok
      ? Promise.resolve(recent.outcome.value)
      : Promise.reject(recent.outcome.error);
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
    return this.#withDeadline(index, this.#options.execTimeoutMs, () => {
      this.#reads.delete(id);
      return new TimedOutError("Leadership was not confirmed in time");
    });
  }

  async #changeMembership(members: Member[]): Promise<void> {
    const core = this.#core!;
    if (this.#changing || core.changeInProgress()) {
      throw new ConfigChangeError(
        "Cannot change the configuration: another change is in progress",
      );
    }
    this.#changing = true;
    try {
      await this.#catchUp(members);
      const term = core.term;
      const index = core.proposeMembership(members);
      this.#logger.info("membership change started", {
        id: this.#id,
        index,
        members: members.map((member) => member.id),
      });
      this.#kick();
      await this.#waitForMembership(index, term);
    } finally {
      for (const id of this.#learners.keys()) core.removeLearner(id);
      this.#learners.clear();
      this.#changing = false;
    }
  }

  /** Replicates to new members as learners until they are nearly current. */
  async #catchUp(members: Member[]): Promise<void> {
    const core = this.#core!;
    const current = new Set(core.membership.quorum.all());
    const added = members.filter((member) => !current.has(member.id));
    if (added.length === 0) return;
    for (const member of added) {
      this.#learners.set(member.id, member);
      core.addLearner(member.id);
    }
    this.#peersIndex = -1;
    this.#updatePeers();
    this.#kick();
    // Caught up: holds everything committed before the change began, and
    // trails the leader by at most one AppendEntries batch.
    const target = core.commit;
    const lag = this.#options.entriesPerAppendMax ?? 512;
    const caughtUp = () =>
      added.every((member) => {
        const match = core.progressOf(member.id)?.match ?? 0;
        return match >= target && core.lastIndex - match <= lag;
      });
    try {
      await this.#waitFor(
        () => caughtUp() || core.role !== "leader",
        this.#options.catchUpTimeoutMs,
        () =>
          new ConfigChangeError(
            `Cannot change the configuration: node(s) ${
              added.map((member) => member.id).join(", ")
            } did not catch up within ${this.#options.catchUpTimeoutMs} ms`,
          ),
      );
    } catch (error) {
      this.#peersIndex = -1;
      throw error;
    }
    if (core.role !== "leader") throw new NotLeaderError(core.leader);
  }

  #waitForMembership(index: number, term: number): Promise<void> {
    const core = this.#core!;
    return this.#waitFor(
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
      this.#options.execTimeoutMs,
      () =>
        new TimedOutError(
          `Configuration change at ${index} did not finish in time: ` +
            "it may still complete",
        ),
    );
  }

  // -------------------------------------------------------------- waiting

  #waitFor(
    ready: () => boolean,
    timeoutMs: number,
    timeout: () => Error,
  ): Promise<void> {
    if (ready()) return Promise.resolve();
    this.#checkRunning();
    return new Promise((resolve, reject) => {
      this.#waiters.add({
        ready,
        deadline: this.#clock.now() + Math.max(0, timeoutMs),
        resolve,
        reject,
        timeout,
      });
    });
  }

  #checkWaiters(): void {
    const now = this.#clock.now();
    for (const waiter of this.#waiters) {
      let done: boolean;
      try {
        done = waiter.ready();
      } catch (error) {
        this.#waiters.delete(waiter);
        waiter.reject(asError(error));
        continue;
      }
      if (done) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      } else if (now >= waiter.deadline) {
        this.#waiters.delete(waiter);
        waiter.reject(waiter.timeout());
      }
    }
  }

  #withDeadline<T>(
    promise: Promise<T>,
    timeoutMs: number,
    timeout: () => Error,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.#clock.setTimer(() => reject(timeout()), timeoutMs);
      promise.then(resolve, reject).finally(() =>
        this.#clock.clearTimer(timer)
      );
    });
  }

  #checkRunning(): void {
    if (this.#state === "running") return;
    const reason = this.#failure ? `failed: ${this.#failure.message}` : "";
    throw new StoppedError(
      `Server ${this.#id} is not running: ${reason || this.#state}`,
    );
  }
}

function checkTiming(options: typeof defaults): void {
  const { tickMs, electionTimeoutMs, heartbeatIntervalMs } = options;
  for (const name of Object.keys(defaults) as (keyof typeof defaults)[]) {
    const value = options[name];
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`Invalid option ${name}: must be positive`);
    }
  }
  if (heartbeatIntervalMs >= electionTimeoutMs) {
    throw new RangeError(
      "Invalid timing: heartbeatIntervalMs must be below electionTimeoutMs",
    );
  }
  if (electionTimeoutMs < 2 * tickMs) {
    throw new RangeError(
      "Invalid timing: electionTimeoutMs must be at least two ticks",
    );
  }
}

function checkPlacement(value: unknown): Placement {
  const { index, term } = (value ?? {}) as Partial<Placement>;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) {
    throw new TypeError("Invalid reply from the leader: expected index, term");
  }
  return { index: index!, term: term! };
}

function notCommitted(index: number, term: number): NotCommittedError {
  return new NotCommittedError(
    `Entry ${index} was overwritten by a leader of term ${term}: ` +
      "the command was not committed",
  );
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function causeChain(error: unknown): string {
  const parts: string[] = [];
  for (let at = error; at instanceof Error && parts.length < 8; at = at.cause) {
    parts.push(at.message);
  }
  return parts.join(": ");
}

function reviveError(error: { name: string; message: string }): Error {
  const ErrorClass = forwardableErrors[error.name];
  if (ErrorClass) return new ErrorClass(error.message);
  const revived = new LilraftError(error.message);
  revived.name = error.name;
  return revived;
}
