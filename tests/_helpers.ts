/**
 * Shared helpers for the integration tests: free ports, polling with a
 * deadline, and a small in-process cluster over real HTTP.
 *
 * @module
 */

import {
  type Command,
  Config,
  HttpNode,
  Server,
  type ServerOptions,
} from "../mod.ts";

import { freePorts } from "../examples/_util.ts";

export { freePorts };

/** Appends a number to the context and returns the new length. */
export class AppendCommand implements Command<number[], number> {
  constructor(public val: number) {}
  name(): string {
    return "append";
  }
  apply(context: number[]): number {
    context.push(this.val);
    return context.length;
  }
}

/** Always throws from apply, identically on every node. */
export class FailCommand implements Command<number[], never> {
  constructor(public reason: string) {}
  name(): string {
    return "fail";
  }
  apply(): never {
    throw new RangeError(`refused: ${this.reason}`);
  }
}

/**
 * Polls `probe` until it returns something truthy.
 *
 * @throws {Error} naming `what` after `timeoutMs`.
 */
export async function waitUntil<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A cluster of in-process servers over HTTP on loopback. */
export class TestCluster {
  readonly config: Config;
  readonly ports: number[];
  readonly root: string;
  readonly servers = new Map<number, Server<number[]>>();
  readonly options: ServerOptions;

  /** Every node that may ever join, by id. */
  readonly nodes: HttpNode[];

  private constructor(
    root: string,
    ports: number[],
    size: number,
    options: ServerOptions,
  ) {
    this.root = root;
    this.ports = ports;
    this.options = options;
    this.nodes = ports.map((port, i) =>
      new HttpNode(i + 1, `http://127.0.0.1:${port}`)
    );
    this.config = new Config(...this.nodes.slice(0, size));
  }

  /** Starts `size` nodes and waits for a leader. */
  static async start(
    size = 3,
    options: ServerOptions = {},
    spare = 0,
  ): Promise<TestCluster> {
    const cluster = await TestCluster.prepare(size, options, spare);
    for (let id = 1; id <= size; id++) await cluster.startNode(id);
    await cluster.leader();
    return cluster;
  }

  /** Lays out `size` founding and `spare` joining nodes; starts none. */
  static async prepare(
    size: number,
    options: ServerOptions = {},
    spare = 0,
  ): Promise<TestCluster> {
    const root = await Deno.makeTempDir({ prefix: "lilraft-test-" });
    const ports = freePorts(size + spare);
    return new TestCluster(root, ports, size, options);
  }

  /**
   * Creates (not starts) node `id` with a fresh context. Nodes beyond the
   * founding ones join: they know every node and wait to be added.
   */
  create(id: number, options: ServerOptions = {}): Server<number[]> {
    const founding = this.config.nodes.some((node) => node.id === id);
    const server = new Server<number[]>(
      id,
      [],
      founding ? this.config : new Config(...this.nodes),
      this.dataPath(id),
      { ...this.options, join: !founding, ...options },
    );
    server.registerCommand(AppendCommand);
    server.registerCommand(FailCommand);
    server.setHttpTransport(this.ports[id - 1]!);
    return server;
  }

  /** Creates and starts node `id`. */
  async startNode(
    id: number,
    recover = false,
    options: ServerOptions = {},
  ): Promise<Server<number[]>> {
    const server = this.create(id, options);
    await server.start({ recover });
    this.servers.set(id, server);
    return server;
  }

  /** Stops node `id` cleanly. */
  async stopNode(id: number): Promise<void> {
    await this.servers.get(id)?.stop();
    this.servers.delete(id);
  }

  /** The data path of node `id`. */
  dataPath(id: number): string {
    return `${this.root}/node-${id}`;
  }

  /** Waits until exactly one running node is leader, and returns it. */
  async leader(): Promise<Server<number[]>> {
    return await waitUntil(() => {
      const leaders = [...this.servers.values()].filter((server) =>
        server.status().role === "leader"
      );
      return leaders.length === 1 ? leaders[0] : undefined;
    }, "a single leader");
  }

  /** A running node that is not the leader. */
  async follower(): Promise<Server<number[]>> {
    const leader = await this.leader();
    return [...this.servers.values()].find((s) => s !== leader)!;
  }

  /** Waits until every running node has applied `index`. */
  async applied(index: number): Promise<void> {
    await waitUntil(
      () =>
        [...this.servers.values()].every((s) =>
          s.status().appliedIndex >= index
        ),
      `every node to apply ${index}`,
    );
  }

  /** Stops every node and removes the data. */
  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
    await Deno.remove(this.root, { recursive: true });
  }
}
