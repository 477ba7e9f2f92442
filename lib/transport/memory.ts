/**
 * An in-memory network of {@linkcode Transport}s for tests and simulation.
 *
 * Every message is copied through JSON and validated like on the wire, then
 * delivered after a delay through a pluggable scheduler, so that a
 * deterministic simulator can run the network on a virtual clock. Faults
 * (loss, delay, duplication, partitions) are drawn from a pluggable random
 * source.
 *
 * @module
 */

import type { Member, Message, NodeId } from "../core/types.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "./transport.ts";
import {
  parseForwardReply,
  parseForwardRequest,
  parseMessages,
} from "./validate.ts";

/** Runs `run` after `delayMs` milliseconds of (real or virtual) time. */
export type Schedule = (run: () => void, delayMs: number) => void;

/** Options of {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Runs deliveries and timeouts; `setTimeout` by default. */
  schedule?: Schedule;
  /** Draws faults, in [0, 1); `Math.random` by default. Not used otherwise. */
  random?: () => number;
}

/** Options of {@linkcode MemoryNetwork.partition}. */
export interface PartitionOptions {
  /** Cut only the direction from the first group to the second. */
  oneWay?: boolean;
}

/**
 * What a {@linkcode MemoryTransport} uses to reach its network. Created by
 * {@linkcode MemoryNetwork.transport}; not meant to be implemented.
 */
export interface MemoryLink {
  /** Makes the node reachable with these handlers. */
  attach(handlers: TransportHandlers): void;
  /** Makes the node unreachable. */
  detach(): void;
  /** Sends messages from the node. */
  send(messages: Message[]): void;
  /** Forwards a request from the node. */
  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply>;
}

/**
 * A simulated network connecting {@linkcode MemoryTransport}s.
 *
 * Faults apply to Raft messages one by one; forwarded requests are subject
 * to partitions and delays only. Messages are reordered naturally when the
 * delay range is wider than zero.
 *
 * @example Cut node 3 off from nodes 1 and 2
 * ```ts
 * import { MemoryNetwork } from "./memory.ts";
 * const network = new MemoryNetwork();
 * const transport = network.transport(1);
 * network.partition([1, 2], [3]);
 * network.heal();
 * ```
 */
export class MemoryNetwork {
  #schedule: Schedule | undefined;
  #random: () => number;
  #attached = new Map<NodeId, TransportHandlers>();
  #dropRate = 0;
  #duplicateRate = 0;
  #delayMinMs = 0;
  #delayMaxMs = 0;
  #cuts = new Set<string>();
  #isolated = new Set<NodeId>();

  /** @param options The scheduler and the random source. */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#schedule = options.schedule;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Creates the transport of node `id`.
   *
   * @throws {RangeError} when `id` is not a positive integer.
   * @throws {Error} when a transport of `id` is still started.
   */
  transport(id: NodeId): MemoryTransport {
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new RangeError(`Cannot create transport: invalid node id ${id}`);
    }
    if (this.#attached.has(id)) {
      throw new Error(`Cannot create transport: node ${id} is still started`);
    }
    return new MemoryTransport(id, this.#link(id));
  }

  /**
   * Loses each message with probability `rate`.
   *
   * @throws {RangeError} when `rate` is not in [0, 1].
   */
  drop(rate: number): void {
    this.#dropRate = checkRate("drop", rate);
  }

  /**
   * Delays each message and forward by a random time in [minMs, maxMs].
   *
   * @throws {RangeError} unless 0 <= minMs <= maxMs, both finite.
   */
  delay(minMs: number, maxMs: number): void {
    if (!(minMs >= 0 && maxMs >= minMs && Number.isFinite(maxMs))) {
      throw new RangeError(
        `Invalid delay: expected 0 <= min <= max, got ${minMs} and ${maxMs}`,
      );
    }
    this.#delayMinMs = minMs;
    this.#delayMaxMs = maxMs;
  }

  /**
   * Delivers each message twice with probability `rate`.
   *
   * @throws {RangeError} when `rate` is not in [0, 1].
   */
  duplicate(rate: number): void {
    this.#duplicateRate = checkRate("duplicate", rate);
  }

  /**
   * Cuts every link between group `a` and group `b`, in addition to the
   * cuts already made. Senders see cut messages as unreachable; cut
   * forwards time out.
   *
   * @param options `oneWay: true` cuts only the direction from `a` to `b`.
   */
  partition(a: NodeId[], b: NodeId[], options: PartitionOptions = {}): void {
    for (const from of a) {
      for (const to of b) {
        if (from === to) continue;
        this.#cuts.add(`${from}>${to}`);
        if (!options.oneWay) this.#cuts.add(`${to}>${from}`);
      }
    }
  }

  /** Cuts node `id` off from every other node, present or future. */
  isolate(id: NodeId): void {
    this.#isolated.add(id);
  }

  /** Removes every partition and isolation; other faults stay. */
  heal(): void {
    this.#cuts.clear();
    this.#isolated.clear();
  }

  #link(id: NodeId): MemoryLink {
    let handlers: TransportHandlers | undefined;
    return {
      attach: (attached) => {
        handlers = attached;
        this.#attached.set(id, attached);
      },
      detach: () => {
        if (this.#attached.get(id) === handlers) this.#attached.delete(id);
        handlers = undefined;
      },
      send: (messages) => this.#send(id, messages),
      forward: (to, request, timeoutMs) =>
        this.#forward(id, to, request, timeoutMs),
    };
  }

  #send(from: NodeId, messages: Message[]): void {
    const unreachable = new Set<NodeId>();
    const cluster = this.#attached.get(from)?.clusterId?.();
    for (const message of messages) {
      const to = message.to;
      if (!this.#attached.has(to) || this.#isCut(from, to)) {
        unreachable.add(to);
        continue;
      }
      if (this.#chance(this.#dropRate)) continue;

      const wire = JSON.stringify(message);
      const copies = this.#chance(this.#duplicateRate) ? 2 : 1;
      for (let copy = 0; copy < copies; copy++) {
        this.#later(() => this.#deliver(from, to, wire, cluster));
      }
    }
    for (const to of unreachable) {
      this.#later(() => this.#attached.get(from)?.unreachable(to));
    }
  }

  /** Throws when the message is invalid: that is a bug of the sender. */
  #deliver(
    from: NodeId,
    to: NodeId,
    wire: string,
    cluster: string | undefined,
  ): void {
    const handlers = this.#attached.get(to);
    if (handlers === undefined || this.#isCut(from, to)) return;

    const messages = parseMessages([JSON.parse(wire)]);
    if (!handlers.accepts(from, cluster)) return;
    handlers.receive(messages);
  }

  #forward(
    from: NodeId,
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    const sender = this.#attached.get(from);
    if (sender === undefined) {
      const reason = `Cannot forward to node ${to}: transport is not started`;
      return Promise.reject(new Error(reason));
    }

    const { promise, resolve, reject } = Promise.withResolvers<ForwardReply>();
    let settled = false;
    const settle = (outcome: ForwardReply | string) => {
      if (settled) return;
      settled = true;
      cancelTimeout();
      if (typeof outcome !== "string") resolve(outcome);
      else reject(new Error(`Cannot forward to node ${to}: ${outcome}`));
    };
    const cancelTimeout = this.#timeout(
      () => settle(`no answer within ${timeoutMs} ms`),
      timeoutMs,
    );

    const wire = JSON.stringify(request);
    this.#later(() => this.#serveForward(from, to, wire, sender, settle));
    return promise;
  }

  #serveForward(
    from: NodeId,
    to: NodeId,
    wire: string,
    sender: TransportHandlers,
    settle: (outcome: ForwardReply | string) => void,
  ): void {
    if (this.#isCut(from, to)) return;
    const handlers = this.#attached.get(to);
    if (handlers === undefined) return settle("node is not started");

    const request = parseForwardRequest(JSON.parse(wire));
    handlers.forward(request).then(
      (reply) => {
        const back = JSON.stringify(reply);
        this.#later(() => {
          if (this.#isCut(to, from)) return;
          if (this.#attached.get(from) !== sender) {
            return settle("transport stopped");
          }
          settle(parseForwardReply(JSON.parse(back)));
        });
      },
      (error) => this.#later(() => settle(`node failed: ${text(error)}`)),
    );
  }

  #isCut(from: NodeId, to: NodeId): boolean {
    if (from === to) return false;
    if (this.#isolated.has(from) || this.#isolated.has(to)) return true;
    return this.#cuts.has(`${from}>${to}`);
  }

  #chance(rate: number): boolean {
    return rate > 0 && this.#random() < rate;
  }

  /** Runs `run` after a random network delay. */
  #later(run: () => void): void {
    const span = this.#delayMaxMs - this.#delayMinMs;
    const delayMs = span > 0
      ? this.#delayMinMs + this.#random() * span
      : this.#delayMinMs;
    if (this.#schedule) this.#schedule(run, delayMs);
    else setTimeout(run, delayMs);
  }

  /** Runs `run` after `delayMs` unless cancelled by the returned function. */
  #timeout(run: () => void, delayMs: number): () => void {
    if (this.#schedule === undefined) {
      const timer = setTimeout(run, delayMs);
      return () => clearTimeout(timer);
    }
    let cancelled = false;
    this.#schedule(() => cancelled || run(), delayMs);
    return () => cancelled = true;
  }
}

/**
 * The transport of one node on a {@linkcode MemoryNetwork}; create it with
 * {@linkcode MemoryNetwork.transport}.
 */
export class MemoryTransport implements Transport {
  #id: NodeId;
  #link: MemoryLink;
  #peers = new Set<NodeId>();
  #learned = new Set<NodeId>();
  #started = false;

  /**
   * @param id The node this transport belongs to.
   * @param link The network's side, from {@linkcode MemoryNetwork.transport}.
   */
  constructor(id: NodeId, link: MemoryLink) {
    this.#id = id;
    this.#link = link;
  }

  /** The node this transport belongs to. */
  get id(): NodeId {
    return this.#id;
  }

  /**
   * Attaches the node to the network.
   *
   * @throws {RangeError} when `self` is not the id given to the network.
   * @throws {Error} when already started.
   */
  start(self: NodeId, handlers: TransportHandlers): Promise<void> {
    if (self !== this.#id) {
      const reason =
        `Cannot start transport: it belongs to node ${this.#id}, not ${self}`;
      return Promise.reject(new RangeError(reason));
    }
    if (this.#started) {
      const reason = `Cannot start transport: node ${self} is already started`;
      return Promise.reject(new Error(reason));
    }

    this.#started = true;
    // A member that sends to this node is a peer from then on, as over HTTP.
    this.#link.attach({
      ...handlers,
      accepts: (from, cluster) => handlers.accepts(from, cluster),
      receive: (messages) => {
        for (const message of messages) this.#learned.add(message.from);
        handlers.receive(messages);
      },
    });
    return Promise.resolve();
  }

  #knows(id: NodeId): boolean {
    return this.#peers.has(id) || this.#learned.has(id);
  }

  /** Replaces the set of nodes messages may be sent to; URLs are ignored. */
  setPeers(members: Member[]): void {
    this.#peers = new Set(members.map((member) => member.id));
  }

  /** Sends messages to known peers; others are dropped. Never throws. */
  send(messages: Message[]): void {
    if (!this.#started) return;
    const known = messages.filter((message) => this.#knows(message.to));
    if (known.length > 0) this.#link.send(known);
  }

  /**
   * Forwards a request to node `to` and waits for the reply.
   *
   * @throws {Error} when stopped, `to` is unknown or not started, or no
   * reply arrives within `timeoutMs` (of the network's clock).
   */
  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    if (!this.#started) {
      const reason = `Cannot forward to node ${to}: transport is not started`;
      return Promise.reject(new Error(reason));
    }
    if (!this.#knows(to)) {
      const reason = `Cannot forward to node ${to}: node is not a known peer`;
      return Promise.reject(new Error(reason));
    }
    return this.#link.forward(to, request, timeoutMs);
  }

  /** Detaches the node: messages to it are dropped from now on. */
  stop(): Promise<void> {
    this.#started = false;
    this.#link.detach();
    return Promise.resolve();
  }
}

function checkRate(name: string, rate: number): number {
  if (!(rate >= 0 && rate <= 1)) {
    throw new RangeError(
      `Invalid ${name} rate: expected a number in [0, 1], got ${rate}`,
    );
  }
  return rate;
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
