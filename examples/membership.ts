/**
 * Membership changes by joint consensus, on loopback.
 *
 * Starts three nodes, writes, grows the cluster to five, writes, removes
 * the leader, and shows the new leader taking writes. Prints every node's
 * view of the members along the way, cleans up and exits 0.
 *
 * Run: `deno task membership`
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

const dataRoot = await Deno.makeTempDir({ prefix: "lilraft-membership-" });
const nodes = freePorts(5).map((port, i) =>
  new HttpNode(i + 1, `http://127.0.0.1:${port}`)
);
const founding = new Config(...nodes.slice(0, 3));
const everyone = new Config(...nodes);
const servers = new Map<number, Server<number[]>>();

async function startNode(id: number): Promise<Server<number[]>> {
  const joining = id > 3;
  const server = new Server<number[]>(
    id,
    [],
    joining ? everyone : founding,
    `${dataRoot}/node-${id}`,
    { logger: stderrLogger(`node ${id}`), join: joining },
  );
  server.registerCommand(AppendCommand);
  server.setHttpTransport(Number(new URL(nodes[id - 1]!.url).port));
  await server.start();
  servers.set(id, server);
  return server;
}

try {
  for (const id of [1, 2, 3]) await startNode(id);
  let leader = await waitForLeader();
  say(`leader of the founding cluster: node ${leader.id}`);
  await leader.exec(new AppendCommand(1));
  await showMembers("three members");

  await startNode(4);
  await startNode(5);
  say("nodes 4 and 5 started with join: true; growing to five");
  await leader.setConfig(...nodes);
  await leader.exec(new AppendCommand(2));
  await showMembers("five members");

  const removed = leader.id;
  const remaining = nodes.filter((node) => node.id !== removed);
  say(`removing the leader, node ${removed}`);
  await leader.setConfig(...remaining);
  await servers.get(removed)!.stop();
  servers.delete(removed);
  leader = await waitForLeader();
  say(`new leader: node ${leader.id}`);
  const length = await leader.exec(new AppendCommand(3));
  say(`write after removing the old leader -> length ${length}`);
  await waitUntil(
    () => [...servers.values()].every((s) => s.context.length === length),
    "every node to apply the write",
  );
  await showMembers("four members");
} finally {
  await Promise.all([...servers.values()].map((s) => s.stop()));
  await Deno.remove(dataRoot, { recursive: true });
}
say("done");

async function showMembers(title: string): Promise<void> {
  const length = Math.max(
    ...[...servers.values()].map((s) => s.context.length),
  );
  await waitUntil(
    () => [...servers.values()].every((s) => s.context.length === length),
    "every node to apply the latest write",
  );
  say(`${title}:`);
  for (const server of [...servers.values()].sort((a, b) => a.id - b.id)) {
    const { role, members, oldMembers } = server.status();
    const view = members.map((m) => m.id).join(",");
    const joint = oldMembers.length > 0 ? " (joint)" : "";
    say(
      `  node ${server.id} (${role}) sees members [${view}]${joint}, ` +
        `context [${server.context.join(", ")}]`,
    );
  }
}

async function waitForLeader(): Promise<Server<number[]>> {
  return await waitUntil(() => {
    const leaders = [...servers.values()].filter((s) =>
      s.status().role === "leader"
    );
    return leaders.length === 1 ? leaders[0] : undefined;
  }, "a leader");
}
