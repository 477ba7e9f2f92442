/**
 * Commands: the user's operations on the replicated context, and the
 * registry that turns log entries back into them.
 *
 * @module
 */

/**
 * An operation on the replicated context `C` that returns `R`.
 *
 * `apply` must be deterministic and synchronous: every node runs it on its
 * own copy of the context, in the same order, and must reach the same state.
 * The command's own enumerable fields are its payload: they are stored as
 * JSON, and a registered class is revived from them without running its
 * constructor.
 *
 * @typeParam C The context type.
 * @typeParam R What `apply` returns; `exec` resolves with the value the
 *   node it was called on computed.
 */
export interface Command<C, R = unknown> {
  /** The registered name of this kind of command. */
  name(): string;
  /** Changes the context; what it returns `exec` resolves with. */
  apply(context: C): R;
}

/** A class whose instances are commands on context `C`. */
// deno-lint-ignore no-explicit-any
export type CommandClass<C> = new (...args: any[]) => Command<C, unknown>;

/** An entry's decoded command: its name and JSON payload. */
export interface EncodedCommand {
  /** The command's name. */
  name: string;
  /** The command's own fields. */
  payload: unknown;
}

/** Maps command names to classes; the same on every node. */
export class CommandRegistry<C> {
  #classes = new Map<string, CommandClass<C>>();

  /**
   * Registers a command class under the name its instances report.
   *
   * @throws {TypeError} when the name is empty or already registered.
   */
  register(commandClass: CommandClass<C>): string {
    const name = nameOf(commandClass);
    if (this.#classes.has(name)) {
      throw new TypeError(
        `Cannot register command "${name}": the name is already registered`,
      );
    }
    this.#classes.set(name, commandClass);
    return name;
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.#classes.has(name);
  }

  /** Encodes a command as entry data. */
  encode(name: string, payload: unknown): string {
    return JSON.stringify({ name, payload });
  }

  /**
   * Revives a command from entry data, without running its constructor.
   *
   * @throws {TypeError} when the data is not an encoded command or its
   *   name is not registered.
   */
  decode(data: string): Command<C, unknown> {
    const { name, payload } = JSON.parse(data) as EncodedCommand;
    const commandClass = this.#classes.get(name);
    if (!commandClass) {
      throw new TypeError(
        `Cannot decode command "${name}": it is not registered on this node`,
      );
    }
    const command = Object.create(commandClass.prototype);
    return Object.assign(command, payload) as Command<C, unknown>;
  }
}

function nameOf<C>(commandClass: CommandClass<C>): string {
  const probe = Object.create(commandClass.prototype) as Command<C, unknown>;
  if (typeof probe.name !== "function") {
    throw new TypeError(
      `Cannot register ${commandClass.name}: it has no name() method`,
    );
  }
  const name = probe.name();
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot register ${commandClass.name}: name() must return a string`,
    );
  }
  return name;
}
