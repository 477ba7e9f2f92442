/**
 * The simulated clients: they invoke the workload's operations on running
 * nodes, record the history and check it for linearizability at the end.
 *
 * @module
 */

import { errorName, errorText } from "./_errors.ts";
import { type HistoryOperation, linearizable } from "./_linearizability.ts";
import type { Nodes } from "./_nodes.ts";
import { pick } from "./_random.ts";
import type { Incarnation, Slot } from "./_slot.ts";
import type { Operation } from "./_types.ts";
import type { World } from "./_world.ts";

/** Operations invoked this long after healing must succeed. */
const livenessGraceMs = 1500;
/** Budget of the linearizability search, per key. */
const searchStepsMax = 2_000_000;
/** Errors after which a write may or may not have taken effect. */
const unknownOutcomeErrors = ["NoLeaderError", "StoppedError", "TimedOutError"];

/** One operation of one client, from invocation to outcome. */
interface ClientRecord<C> {
  client: number;
  operation: Operation<C>;
  call: number;
  ret: number;
  invokedAt: number;
  output: unknown;
  state: "running" | "ok" | "unknown" | "failed";
  incarnation: Incarnation<C>;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The clients of a run and their history. */
export class Clients<C, S> {
  readonly #world: World<C, S>;
  readonly #nodes: Nodes<C, S>;
  readonly #records: ClientRecord<C>[] = [];
  #historyClock = 0;

  constructor(world: World<C, S>, nodes: Nodes<C, S>) {
    this.#world = world;
    this.#nodes = nodes;
  }

  /** Schedules the first operation of every client. */
  start(): void {
    const world = this.#world;
    const clients = world.options.clients ?? 4;
    for (let client = 0; client < clients; client++) {
      world.time.at(world.random.clients() * 50, () => this.#invoke(client));
    }
  }

  /** Whether some operation still waits for its outcome. */
  hasPending(): boolean {
    return this.#records.some((record) => record.state === "running");
  }

  /** How many operations still wait for their outcome. */
  pendingCount(): number {
    return this.#records.filter((record) => record.state === "running")
      .length;
  }

  #invoke(client: number): void {
    const world = this.#world;
    if (world.phase === "draining" || world.failure) return;
    const slot = pick(world.random.clients, this.#targets());
    if (!slot) {
      world.after(20, () => this.#invoke(client));
      return;
    }

    const incarnation = slot.incarnation!;
    const operation = world.options.workload.next(world.random.clients, client);
    const record: ClientRecord<C> = {
      client,
      operation,
      call: ++this.#historyClock,
      ret: Infinity,
      invokedAt: world.time.now,
      output: undefined,
      state: "running",
      incarnation,
    };
    this.#records.push(record);
    world.traceLine(
      `client ${client} on ${slot.id}: ${operation.kind} ` +
        JSON.stringify(operation.input),
    );

    const server = incarnation.server;
    const promise = operation.kind === "exec"
      ? server.exec(operation.command)
      : server.read(operation.query);
    promise.then(
      (value) => this.#complete(record, { ok: true, value }),
      (error) => this.#complete(record, { ok: false, error }),
    );
  }

  /** Running members of the leader's configuration once healed. */
  #targets(): Slot<C>[] {
    const running = this.#nodes.running();
    if (this.#world.phase === "faults") return running;
    const leader = this.#nodes.leader();
    if (!leader) return running;
    const members = new Set(
      leader.incarnation!.server.status().members.map((one) => one.id),
    );
    return running.filter((slot) => members.has(slot.id));
  }

  #complete(record: ClientRecord<C>, outcome: Outcome): void {
    if (record.state !== "running") return;
    const world = this.#world;
    record.ret = ++this.#historyClock;
    const state = classify(record, outcome);
    world.traceLine(
      `client ${record.client}: ${record.state} ` +
        (outcome.ok ? JSON.stringify(outcome.value) : errorText(outcome.error)),
    );
    const late = record.invokedAt >= world.healedAt + livenessGraceMs;
    if (late && state !== "ok") {
      world.fail(
        "Liveness",
        `An operation invoked ${livenessGraceMs} ms after healing did not ` +
          `succeed: ${outcome.ok ? "" : errorText(outcome.error)}`,
      );
    }
    this.#next(record.client);
  }

  #next(client: number): void {
    const thinkMs = this.#world.random.clients() * 40;
    this.#world.after(thinkMs, () => this.#invoke(client));
  }

  /** Operations of a node that is gone will never complete. */
  abandon(incarnation: Incarnation<C>): void {
    for (const record of this.#records) {
      if (record.incarnation !== incarnation) continue;
      if (record.state !== "running") continue;
      record.state = record.operation.kind === "read" ? "failed" : "unknown";
      this.#world.traceLine(`client ${record.client}: abandoned`);
      this.#next(record.client);
    }
  }

  /** Counts the outcomes and checks the history against the model. */
  checkHistory(): void {
    const world = this.#world;
    const history: HistoryOperation[] = [];
    for (const record of this.#records) {
      if (record.state === "ok") world.stats.completed++;
      if (record.state === "unknown") world.stats.unknown++;
      if (record.state === "failed") world.stats.failed++;
      if (record.state === "failed") continue;
      history.push({
        key: record.operation.key ?? "",
        input: record.operation.input,
        output: record.output,
        call: record.call,
        ret: record.ret,
        pending: record.state !== "ok",
      });
    }

    const model = world.options.workload.model;
    const result = linearizable(history, model, searchStepsMax);
    if (result.ok === false) {
      world.fail(
        "Linearizability",
        `The history of key "${result.key}" is not linearizable`,
      );
    }
  }
}

/** Settles `record` from `outcome` and returns its new state. */
function classify<C>(
  record: ClientRecord<C>,
  outcome: Outcome,
): ClientRecord<C>["state"] {
  if (outcome.ok) {
    record.output = outcome.value;
    return record.state = "ok";
  }
  const name = errorName(outcome.error);
  if (record.operation.kind === "read" || name === "NotCommittedError") {
    record.state = "failed";
  } else if (unknownOutcomeErrors.includes(name)) {
    record.state = "unknown";
  } else {
    // An error thrown by the command's `apply` is its output.
    record.state = "ok";
    record.output = { error: errorText(outcome.error) };
  }
  return record.state;
}
