/**
 * The main demo: a three-node lilraft cluster on loopback.
 *
 * Starts three nodes with their data under a temporary directory, waits for
 * a leader, executes commands from a follower and from the leader, prints
 * every context, stops the leader, writes through the new leader, restarts
 * the old leader with `recover: true` and shows it caught up. Cleans up and
 * exits 0.
 *
 * Run: `deno task cluster`
 *
 * @module
 */

import {
  type Command,
  Config,
  HttpNode,
  Server,
  stderrLogger,
} from "../mod.ts";
import { freePorts, say, waitUntil } from "./_util.ts";

/** Appends a number to the context; returns the new length. */
class AppendCommand implements Command<number[], number> {
  constructor(public val: number) {}
  name(): string {
    return "append";
  }
  apply(context: number[]): number {
    context.push(this.val);
    return context.length;
  }
}

const dataRoot = await Deno.makeTempDir({ prefix: "lilraft-cluster-" });
const ports = freePorts(3);
const config = new Config(
  ...ports.map((port, i) => new HttpNode(i + 1, `http://127.0.0.1:${port}`)),
);

function createServer(id: number): Server<number[]> {
  const server = new Server<number[]>(
    id,
    [],
    config,
    `${dataRoot}/node-${id}`,
    { logger: stderrLogger(`node ${id}`) },
  );
  server.registerCommand(AppendCommand);
  server.setHttpTransport(ports[id - 1]!);
  return server;
}

const servers = new Map<number, Server<number[]>>();
try {
  for (const id of [1, 2, 3]) servers.set(id, createServer(id));
  await Promise.all([...servers.values()].map((s) => s.start()));
  const leader = await waitForLeader([...servers.values()]);
  const follower = [...servers.values()].find((s) => s.id !== leader.id)!;
  say(`leader elected: node ${leader.id}`);

  for (const value of [10, 20, 30]) {
    const length = await follower.exec(new AppendCommand(value));
    say(`exec(append ${value}) on follower ${follower.id} -> length ${length}`);
  }
  const length = await leader.exec(new AppendCommand(40));
  say(`exec(append 40) on leader ${leader.id} -> length ${length}`);
  await waitForApplied([...servers.values()], leader.status().commitIndex);
  printContexts();

  say(`stopping leader ${leader.id}`);
  await leader.stop();
  servers.delete(leader.id);
  const next = await waitForLeader([...servers.values()]);
  say(`new leader elected: node ${next.id}`);
  for (const value of [50, 60]) {
    const length = await next.exec(new AppendCommand(value));
    say(`exec(append ${value}) on new leader ${next.id} -> length ${length}`);
  }

  say(`restarting node ${leader.id} with recover: true`);
  const restarted = createServer(leader.id);
  await restarted.start({ recover: true });
  servers.set(leader.id, restarted);
  say(`node ${leader.id} recovered [${restarted.context.join(", ")}]`);
  await waitForApplied([...servers.values()], next.status().commitIndex);
  say(`node ${leader.id} caught up:`);
  printContexts();
} finally {
  await Promise.all([...servers.values()].map((s) => s.stop()));
  await Deno.remove(dataRoot, { recursive: true });
}
say("done");

function printContexts(): void {
  for (const server of [...servers.values()].sort((a, b) => a.id - b.id)) {
    const { role, term, appliedIndex } = server.status();
    say(
      `  node ${server.id} (${role}, term ${term}, applied ${appliedIndex}):` +
        ` [${server.context.join(", ")}]`,
    );
  }
}

async function waitForLeader(
  candidates: Server<number[]>[],
): Promise<Server<number[]>> {
  return await waitUntil(
    () => candidates.find((s) => s.status().role === "leader"),
    "a leader",
  );
}

async function waitForApplied(
  nodes: Server<number[]>[],
  index: number,
): Promise<void> {
  await waitUntil(
    () => nodes.every((s) => s.status().appliedIndex >= index) || undefined,
    `every node to apply index ${index}`,
  );
}
