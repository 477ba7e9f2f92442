/**
 * The nodes of a run: founding, starting, crashing, restarting and
 * decommissioning servers, and finding the running ones and the leader.
 *
 * @module
 */

import { Config } from "../config.ts";
import type { NodeId } from "../core/types.ts";
import type { LogFields, Logger } from "../logger.ts";
import { inspectCore, Server } from "../server.ts";
import { MemoryStorage } from "../storage/memory.ts";
import type { Transport } from "../transport/transport.ts";
import { errorText } from "./_errors.ts";
import { TracedTransport } from "./_network.ts";
import { forkRandom } from "./_random.ts";
import { type Incarnation, member, type Slot } from "./_slot.ts";
import { FencedStorage } from "./_storage.ts";
import { NodeClock } from "./_time.ts";
import type { World } from "./_world.ts";

/** Timeouts of every server, in virtual milliseconds. */
const timing = {
  tickMs: 10,
  electionTimeoutMs: 150,
  heartbeatIntervalMs: 50,
  execTimeoutMs: 1000,
  catchUpTimeoutMs: 1000,
};

/** What other parts of the run learn from the nodes. */
export interface NodeHooks<C> {
  /** A node won an election (after the safety checks saw it). */
  elected(slot: Slot<C>): void;
  /** An incarnation is gone: its pending operations never complete. */
  abandoned(incarnation: Incarnation<C>): void;
}

/** What an incarnation's server runs on. */
interface ServerParts {
  storage: FencedStorage;
  transport: Transport;
  clock: NodeClock;
}

/** Refers a logger to the incarnation it belongs to, once it exists. */
interface Holder<C> {
  incarnation?: Incarnation<C>;
}

/** The servers of a run, one slot per node id. */
export class Nodes<C, S> {
  readonly #world: World<C, S>;
  readonly #hooks: NodeHooks<C>;

  constructor(world: World<C, S>, hooks: NodeHooks<C>) {
    this.#world = world;
    this.#hooks = hooks;
  }

  /** Starts the founding members with the founding configuration. */
  found(): void {
    const founders = Array.from(
      { length: this.#world.founders },
      (_, i) => member(i + 1),
    );
    const config = new Config(...founders);
    for (const node of founders) this.add(node.id, false, config);
  }

  /** Creates a slot for `id` and starts its first incarnation. */
  add(id: NodeId, join: boolean, config: Config): Slot<C> {
    const slot: Slot<C> = {
      id,
      join,
      config,
      storage: new MemoryStorage({ sync: () => this.#sync(slot) }),
      durable: {
        hardState: { term: 0, vote: 0, commit: 0 },
        terms: [],
        votes: new Map(),
      },
      diskSlowMs: 0,
      incarnation: null,
      decommissioned: false,
    };
    this.#world.slots.set(id, slot);
    this.#start(slot);
    return slot;
  }

  /** An fsync: always a separate event, later on a slow disk. */
  #sync(slot: Slot<C>): Promise<void> {
    const delay = slot.diskSlowMs * this.#world.random.disk();
    return new Promise((resolve) => {
      this.#world.after(delay, resolve);
    });
  }

  #start(slot: Slot<C>): void {
    const world = this.#world;
    const holder: Holder<C> = {};
    const clock = new NodeClock(world.time);
    const storage = new FencedStorage(
      slot.storage,
      (batch) => world.checker.onDurable(slot, batch),
    );
    const transport = this.#transport(slot);
    const server = this.#server(slot, { storage, transport, clock }, holder);

    const incarnation = newIncarnation(server, clock, storage, transport);
    holder.incarnation = incarnation;
    slot.incarnation = incarnation;
    world.traceLine(`${slot.id}: start`);
    server.start({ recover: true }).then(
      () => incarnation.running = !incarnation.stopped && !clock.dead,
      (error) => {
        if (clock.dead) return;
        world.fail(
          "Server",
          `Node ${slot.id} failed to start: ${errorText(error)}`,
        );
      },
    );
  }

  /** A server on `parts`, with its own random stream and the commands. */
  #server(slot: Slot<C>, parts: ServerParts, holder: Holder<C>): Server<C> {
    const world = this.#world;
    const server = new Server(
      slot.id,
      world.options.context(),
      slot.config,
      "",
      {
        ...timing,
        ...world.tuning,
        ...parts,
        join: slot.join,
        random: forkRandom(world.random.nodes),
        logger: this.#logger(slot, holder),
      },
    );
    for (const command of world.options.commands) {
      server.registerCommand(command);
    }
    return server;
  }

  #transport(slot: Slot<C>): Transport {
    const transport = this.#world.network.transport(slot.id);
    if (!this.#world.tracing) return transport;
    return new TracedTransport(
      transport,
      (line) => this.#world.traceLine(`${slot.id}: ${line}`),
    );
  }

  #logger(slot: Slot<C>, holder: Holder<C>): Logger {
    const log = (level: string, message: string, fields?: LogFields) => {
      const incarnation = holder.incarnation;
      if (!incarnation || slot.incarnation !== incarnation) return;
      if (level !== "debug") {
        this.#world.traceLine(
          `${slot.id}: ${message} ${JSON.stringify(fields)}`,
        );
      }
      if (message === "became leader") {
        this.#elected(slot, incarnation, Number(fields?.term));
      }
      if (level === "error") {
        this.#world.fail(
          "Server",
          `Node ${slot.id}: ${message}: ${fields?.error}`,
        );
      }
    };
    return {
      debug: (message, fields) => log("debug", message, fields),
      info: (message, fields) => log("info", message, fields),
      warn: (message, fields) => log("warn", message, fields),
      error: (message, fields) => log("error", message, fields),
    };
  }

  #elected(slot: Slot<C>, incarnation: Incarnation<C>, term: number): void {
    const core = incarnation.server[inspectCore]();
    if (core) this.#world.checker.onLeader(slot.id, term, core);
    this.#hooks.elected(slot);
  }

  /** Power cut: timers, network and unsynced writes are gone. */
  crash(slot: Slot<C>): void {
    const incarnation = slot.incarnation;
    if (!incarnation) return;
    this.#world.traceLine(`${slot.id}: CRASH`);
    incarnation.clock.dead = true;
    incarnation.storage.dead = true;
    incarnation.stopped = true;
    void incarnation.transport.stop();
    slot.storage.crash();
    slot.incarnation = null;
    this.#world.stats.crashes++;
    this.#hooks.abandoned(incarnation);
  }

  /** Starts a new incarnation in a slot that has none, if it may run. */
  restart(slot: Slot<C>): void {
    if (slot.incarnation || slot.decommissioned || this.#world.failure) return;
    this.#start(slot);
  }

  /** A clean stop of a node that left the cluster. */
  decommission(id: NodeId): void {
    const world = this.#world;
    const slot = world.slots.get(id);
    const incarnation = slot?.incarnation;
    if (!slot || !incarnation || world.phase !== "faults") return;
    world.traceLine(`${id}: decommission`);
    incarnation.stopped = true;
    incarnation.running = false;
    slot.decommissioned = true;
    slot.incarnation = null;
    this.#hooks.abandoned(incarnation);
    incarnation.server.stop().catch((error) => {
      world.fail("Server", `Node ${id} failed to stop: ${errorText(error)}`);
    });
  }

  /** Slots whose incarnation finished starting and still runs. */
  running(): Slot<C>[] {
    return [...this.#world.slots.values()].filter((slot) =>
      slot.incarnation?.running
    );
  }

  /** The running leader of the highest term, if any. */
  leader(): Slot<C> | undefined {
    let best: Slot<C> | undefined;
    for (const slot of this.running()) {
      const core = slot.incarnation!.server[inspectCore]();
      if (core?.role !== "leader") continue;
      const bestTerm = best?.incarnation?.server[inspectCore]()?.term ?? -1;
      if (core.term > bestTerm) best = slot;
    }
    return best;
  }
}

function newIncarnation<C>(
  server: Server<C>,
  clock: NodeClock,
  storage: FencedStorage,
  transport: Transport,
): Incarnation<C> {
  return {
    server,
    clock,
    storage,
    transport,
    running: false,
    stopped: false,
    lastTerm: 0,
    lastCommit: 0,
    lastApplied: 0,
    verified: [0],
    checks: 0,
  };
}
