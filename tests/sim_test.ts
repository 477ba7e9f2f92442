import { deepEqual, equal, match } from "node:assert/strict";
import type { Command } from "../lib/command.ts";
import {
  allFaults,
  assertSimulations,
  checkLinearizable,
  type Model,
  simulate,
  type SimulationOptions,
  type Workload,
} from "../lib/testing.ts";
import { registerOptions } from "./sim/register.ts";

const register = registerOptions();

function seeds(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, offset) => from + offset);
}

Deno.test("simulate() keeps every safety property for 3 nodes", async () => {
  await assertSimulations(seeds(1, 120), { ...register, nodes: 3 });
});

Deno.test("simulate() keeps every safety property for 5 nodes", async () => {
  await assertSimulations(seeds(1, 40), { ...register, nodes: 5 });
});

Deno.test("simulate() survives each fault on its own", async () => {
  for (const fault of allFaults) {
    await assertSimulations(seeds(500, 6), { ...register, faults: [fault] });
  }
});

Deno.test("simulate() replays a seed exactly", async () => {
  const first = await simulate({ ...register, seed: 99, nodes: 5 });
  const second = await simulate({ ...register, seed: 99, nodes: 5 });
  deepEqual(first.stats, second.stats);
  equal(first.failure, null);
});

// ------------------------------------------------ a user's own commands

/** The example command of the README: append a number to a list. */
class AppendCommand implements Command<number[], number> {
  constructor(public value: number) {}
  name(): string {
    return "append";
  }
  apply(context: number[]): number {
    context.push(this.value);
    return context.length;
  }
}

function appendWorkload(): Workload<number[], number[]> {
  let next = 0;
  return {
    next: (random) =>
      random() < 0.6
        ? { kind: "exec", input: next, command: new AppendCommand(next++) }
        : { kind: "read", input: "read", query: (list) => [...list] },
    model: {
      init: () => [],
      step: (list, input) =>
        typeof input === "number"
          ? [[...list, input], list.length + 1]
          : [list, list],
    },
  };
}

function appendOptions(): Omit<SimulationOptions<number[], number[]>, "seed"> {
  return {
    context: () => [],
    commands: [AppendCommand],
    workload: appendWorkload(),
    invariant: (contexts) => {
      for (const [id, list] of contexts) {
        if (new Set(list).size !== list.length) {
          throw new Error(`Node ${id} appended a value twice: ${list}`);
        }
      }
    },
  };
}

Deno.test("simulate() checks a user's append commands", async () => {
  await assertSimulations(seeds(1, 8), {
    ...appendOptions(),
    faultMs: 2000,
    livenessMs: 2000,
  });
});

/** A command whose result depends on the node: a broken state machine. */
class NondeterministicCommand implements Command<number[], number> {
  name(): string {
    return "nondeterministic";
  }
  apply(context: number[]): number {
    context.push(context.length % 2 === 0 ? 1 : globalThis.performance.now());
    return context.length;
  }
}

Deno.test("simulate() reports a state machine that diverges", async () => {
  const result = await simulate<number[], null>({
    seed: 1,
    faults: [],
    context: () => [],
    commands: [NondeterministicCommand],
    workload: {
      next: () => ({
        kind: "exec",
        input: null,
        command: new NondeterministicCommand(),
      }),
      model: { init: () => null, step: () => [null, undefined] },
    },
    faultMs: 500,
    livenessMs: 500,
  });
  equal(result.failure?.check, "State Machine Safety");
  match(result.replay, /seed: 1,/);
});

Deno.test("simulate() reports a broken user invariant with its seed", async () => {
  const result = await simulate({
    ...appendOptions(),
    seed: 5,
    invariant: (contexts) => {
      for (const list of contexts.values()) {
        if (list.length > 3) throw new Error("list too long");
      }
    },
    replay: "deno task sim --seed {seed}",
  });
  equal(result.failure?.check, "Invariant");
  equal(result.failure?.message, "list too long");
  equal(result.replay, "deno task sim --seed 5");
});

Deno.test("simulate() reports a model the cluster does not follow", async () => {
  const wrong: Model<number[]> = {
    init: () => [],
    step: (list, input) =>
      typeof input === "number"
        ? [[...list, input], list.length + 2]
        : [list, list],
  };
  const result = await simulate({
    ...appendOptions(),
    seed: 3,
    faults: [],
    workload: { ...appendWorkload(), model: wrong },
  });
  equal(result.failure?.check, "Linearizability");
});

// ------------------------------------------------------ linearizability

const registerModel: Model<number> = {
  init: () => 0,
  step: (state, input) =>
    typeof input === "number" ? [input, null] : [state, state],
};

function operation(
  input: unknown,
  output: unknown,
  call: number,
  ret: number,
  pending = false,
) {
  return { key: "x", input, output, call, ret, pending };
}

Deno.test("checkLinearizable() accepts reads concurrent with a write", () => {
  const history = [
    operation(1, null, 0, 10),
    operation("get", 1, 1, 2),
    operation("get", 0, 3, 4),
  ];
  equal(checkLinearizable(history, registerModel).ok, false);
  const concurrent = [
    operation(1, null, 0, 10),
    operation("get", 0, 1, 2),
    operation("get", 1, 3, 4),
  ];
  equal(checkLinearizable(concurrent, registerModel).ok, true);
});

Deno.test("checkLinearizable() lets a pending write apply or not", () => {
  const applied = [
    operation(1, null, 0, 0, true),
    operation("get", 1, 5, 6),
  ];
  equal(checkLinearizable(applied, registerModel).ok, true);
  const never = [
    operation(1, null, 0, 0, true),
    operation("get", 0, 5, 6),
  ];
  equal(checkLinearizable(never, registerModel).ok, true);
  const before = [
    operation("get", 1, 0, 1),
    operation(1, null, 2, 0, true),
  ];
  equal(checkLinearizable(before, registerModel).ok, false);
});

Deno.test("checkLinearizable() checks each key on its own", () => {
  const history = [
    { ...operation(1, null, 0, 1), key: "a" },
    { ...operation("get", 0, 2, 3), key: "b" },
    { ...operation("get", 1, 4, 5), key: "a" },
  ];
  deepEqual(checkLinearizable(history, registerModel), { ok: true });
  const stale = [...history, { ...operation("get", 0, 6, 7), key: "a" }];
  deepEqual(checkLinearizable(stale, registerModel), { ok: false, key: "a" });
});
