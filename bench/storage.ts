/**
 * Throughput of {@linkcode FileStorage}: saves of one 128-byte entry from
 * many concurrent callers, then the time to replay the log on open.
 *
 * Run: `deno run -A bench/storage.ts [saves] [callers] [parent dir]`
 * (defaults: 10000 saves, 64 callers, the system temp dir). The parent
 * dir decides which disk the fsyncs hit.
 *
 * @module
 */

import { EntryKind } from "../lib/core/types.ts";
import { FileStorage } from "../lib/storage/file.ts";

const savesTotal = Number(Deno.args[0] ?? 10_000);
const callers = Number(Deno.args[1] ?? 64);
const parent = Deno.args[2];
const data = "d".repeat(128);

async function run(callerCount: number): Promise<void> {
  const dir = await Deno.makeTempDir({
    prefix: "lilraft-bench-",
    ...(parent ? { dir: parent } : {}),
  });
  try {
    await measure(dir, callerCount);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function measure(dir: string, callerCount: number): Promise<void> {
  const storage = new FileStorage(dir);
  await storage.open();
  let next = 1;
  const caller = async () => {
    while (next <= savesTotal) {
      const index = next++;
      const entry = { index, term: 1, kind: EntryKind.Command, data };
      await storage.save({ entries: [entry] });
    }
  };

  const started = performance.now();
  await Promise.all(Array.from({ length: callerCount }, caller));
  const seconds = (performance.now() - started) / 1000;
  const stats = storage.stats();
  await storage.close();

  const replayStarted = performance.now();
  const reopened = new FileStorage(dir);
  const state = await reopened.open();
  const replayMs = performance.now() - replayStarted;
  await reopened.close();

  console.log(
    `callers=${callerCount} saves=${stats.saves} ` +
      `saves/s=${Math.round(stats.saves / seconds)} syncs=${stats.syncs} ` +
      `saves/sync=${(stats.saves / stats.syncs).toFixed(1)} ` +
      `bytes=${stats.bytesWritten} seconds=${seconds.toFixed(2)} ` +
      `replay=${state.entries.length} entries in ${replayMs.toFixed(0)} ms`,
  );
}

await run(callers);
await run(1);
