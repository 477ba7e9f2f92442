/**
 * The simulator's built-in workload: a register per key, written with
 * `put` commands and read with linearizable reads.
 *
 * @module
 */

import type { Command } from "../../lib/command.ts";
import type { SimulationOptions, Workload } from "../../lib/testing.ts";

/** The replicated context: one value per key, and a digest of history. */
export class RegisterStore {
  /** The current value of each key. */
  values: Map<string, string> = new Map();
  /** A hash chain over every applied command, in order. */
  digest = 0;

  /** The value of `key`, or null. */
  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }
}

/** Sets a key to a value. */
export class PutCommand implements Command<RegisterStore, null> {
  /**
   * @param key The register.
   * @param value The new value; unique per write in the simulator.
   */
  constructor(public key: string, public value: string) {}

  /** The registered name. */
  name(): string {
    return "put";
  }

  /** Stores the value and folds the command into the digest. */
  apply(context: RegisterStore): null {
    context.values.set(this.key, this.value);
    context.digest = fold(context.digest, `${this.key}=${this.value};`);
    return null;
  }
}

/** FNV-1a, continued from `hash`. */
function fold(hash: number, text: string): number {
  let result = hash ^ 0x811c9dc5;
  for (let at = 0; at < text.length; at++) {
    result = Math.imul(result ^ text.charCodeAt(at), 0x01000193);
  }
  return result >>> 0;
}

type RegisterInput = { put: string } | { get: true };

/** A register workload over `keys` keys: 60 % writes, 40 % reads. */
export function registerWorkload(
  keys = 3,
): Workload<RegisterStore, string | null> {
  let written = 0;
  return {
    next(random, client) {
      const key = `k${Math.floor(random() * keys)}`;
      if (random() < 0.4) {
        return {
          kind: "read",
          key,
          input: { get: true },
          query: (context: RegisterStore) => context.get(key),
        };
      }
      const value = `c${client}v${written++}`;
      return {
        kind: "exec",
        key,
        input: { put: value },
        command: new PutCommand(key, value),
      };
    },
    model: {
      init: () => null,
      step: (state, input) => {
        const operation = input as RegisterInput;
        return "put" in operation ? [operation.put, null] : [state, state];
      },
    },
  };
}

/** Options of a register simulation, everything but seed and cluster. */
export function registerOptions(): Omit<
  SimulationOptions<RegisterStore, string | null>,
  "seed"
> {
  return {
    context: () => new RegisterStore(),
    commands: [PutCommand],
    workload: registerWorkload(),
    fingerprint: (context) => String(context.digest),
  };
}
