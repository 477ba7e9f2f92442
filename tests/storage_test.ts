/**
 * One suite run against every {@linkcode Storage}, then the behaviours only
 * one implementation has: the file storage's repair and refusal of a
 * damaged log, and the memory storage's crash.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { type Entry, EntryKind, type HardState } from "../lib/core/types.ts";
import { CorruptLogError, DataPathLockedError } from "../lib/errors.ts";
import type { LogFields, Logger } from "../lib/logger.ts";
import { FileStorage } from "../lib/storage/file.ts";
import { MemoryStorage } from "../lib/storage/memory.ts";
import type { Storage } from "../lib/storage/storage.ts";

// Helpers

function entry(index: number, term: number, data = `c${index}`): Entry {
  return { index, term, kind: EntryKind.Command, data };
}

function entries(first: number, last: number, term: number): Entry[] {
  const made: Entry[] = [];
  for (let index = first; index <= last; index++) {
    made.push(entry(index, term));
  }
  return made;
}

const emptyHardState: HardState = { term: 0, vote: 0, commit: 0 };

interface LogLine {
  level: string;
  message: string;
  fields: LogFields | undefined;
}

function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const record = (level: string) => (message: string, fields?: LogFields) => {
    lines.push({ level, message, fields });
  };
  const logger: Logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  return { logger, lines };
}

/** Runs microtasks and pending I/O callbacks until the event loop idles. */
function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// Shared suite

/** One data path: `make()` returns a storage that opens it. */
interface Fixture {
  make(): Storage;
  cleanup(): Promise<void>;
}

interface Subject {
  name: string;
  setup(): Promise<Fixture>;
}

const subjects: Subject[] = [
  {
    name: "FileStorage",
    async setup() {
      const dir = await Deno.makeTempDir({ prefix: "lilraft-storage-" });
      return {
        make: () => new FileStorage(dir),
        cleanup: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    name: "MemoryStorage",
    setup() {
      const storage = new MemoryStorage();
      return Promise.resolve({
        make: () => storage,
        cleanup: () => Promise.resolve(),
      });
    },
  },
];

for (const subject of subjects) {
  const name = subject.name;

  /** Runs `body` on a fresh data path and removes it afterwards. */
  const withFixture = (body: (fixture: Fixture) => Promise<void>) => {
    return async () => {
      const fixture = await subject.setup();
      try {
        await body(fixture);
      } finally {
        await fixture.cleanup();
      }
    };
  };

  /** Closes `storage`, opens the data path again, and returns its state. */
  const reload = async (fixture: Fixture, storage: Storage) => {
    await storage.close();
    const reopened = fixture.make();
    const state = await reopened.open();
    await reopened.close();
    return state;
  };

  Deno.test(
    `${name}.open() returns an empty state for a new data path`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      const state = await storage.open();
      await storage.close();

      assert.deepEqual(state, {
        hardState: emptyHardState,
        applied: 0,
        entries: [],
      });
    }),
  );

  Deno.test(
    `${name}.open() loads what save() stored`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      await storage.save({ entries: entries(1, 3, 1) });
      await storage.save({ hardState: { term: 2, vote: 3, commit: 2 } });
      await storage.save({ entries: [entry(4, 2, "é ✓ \n")], applied: 2 });

      const state = await reload(fixture, storage);

      assert.deepEqual(state, {
        hardState: { term: 2, vote: 3, commit: 2 },
        applied: 2,
        entries: [...entries(1, 3, 1), entry(4, 2, "é ✓ \n")],
      });
    }),
  );

  Deno.test(
    `${name}.save() replaces the suffix from a lower first index`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      await storage.save({ entries: entries(1, 5, 1) });
      await storage.save({ entries: entries(3, 4, 2) });

      const state = await reload(fixture, storage);

      assert.deepEqual(state.entries, [
        ...entries(1, 2, 1),
        ...entries(3, 4, 2),
      ]);
    }),
  );

  Deno.test(
    `${name}.save() applies concurrent batches in call order`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      await Promise.all([
        storage.save({ entries: entries(1, 4, 1), applied: 1 }),
        storage.save({ entries: entries(2, 3, 2), applied: 2 }),
        storage.save({ hardState: { term: 2, vote: 1, commit: 3 } }),
      ]);

      const state = await reload(fixture, storage);

      assert.deepEqual(state, {
        hardState: { term: 2, vote: 1, commit: 3 },
        applied: 2,
        entries: [entry(1, 1), ...entries(2, 3, 2)],
      });
    }),
  );

  Deno.test(
    `${name}.save() shares one sync between concurrent calls`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      const saves = [];
      for (let index = 1; index <= 200; index++) {
        saves.push(storage.save({ entries: [entry(index, 1)] }));
      }
      await Promise.all(saves);
      const stats = storage.stats();

      const state = await reload(fixture, storage);

      assert.equal(stats.saves, 200);
      // All 200 calls were queued before the first round started.
      assert.equal(stats.syncs, 1);
      assert.deepEqual(state.entries, entries(1, 200, 1));
    }),
  );

  Deno.test(
    `${name}.save() shares syncs between callers that loop`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      let next = 1;
      const caller = async () => {
        while (next <= 400) {
          const index = next++;
          await storage.save({ entries: [entry(index, 1)] });
        }
      };
      await Promise.all(Array.from({ length: 20 }, caller));
      const stats = storage.stats();

      const state = await reload(fixture, storage);

      assert.equal(stats.saves, 400);
      assert.ok(stats.syncs <= 400 / 4, `syncs: ${stats.syncs}`);
      assert.deepEqual(state.entries, entries(1, 400, 1));
    }),
  );

  Deno.test(
    `${name}.save() rejects entries that leave a gap`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      await storage.save({ entries: entries(1, 2, 1) });

      await assert.rejects(storage.save({ entries: [entry(4, 1)] }), {
        name: "RangeError",
        message: "Cannot save entries as the first index leaves a gap: " +
          "first index is 4, last index is 2",
      });
      await assert.rejects(
        storage.save({ entries: [entry(3, 1), entry(5, 1)] }),
        {
          name: "RangeError",
          message: "Cannot save entries as they are not contiguous: " +
            "index 5 follows 3",
        },
      );
      await storage.save({ entries: [entry(3, 1)] });

      const state = await reload(fixture, storage);
      assert.deepEqual(state.entries, entries(1, 3, 1));
    }),
  );

  Deno.test(
    `${name}.close() waits for pending saves and is idempotent`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      const pending = storage.save({ entries: entries(1, 3, 1) });
      await Promise.all([storage.close(), storage.close()]);
      await pending;
      await storage.close();

      const state = await reload(fixture, storage);
      assert.deepEqual(state.entries, entries(1, 3, 1));
    }),
  );

  Deno.test(
    `${name}.save() rejects once the storage is closed`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      await storage.close();

      await assert.rejects(storage.save({ applied: 1 }), {
        name: "Error",
        message: "Cannot save as the storage is not open: closed",
      });
    }),
  );

  Deno.test(
    `${name}.open() refuses a data path that is open elsewhere`,
    withFixture(async (fixture) => {
      const first = fixture.make();
      await first.open();
      await first.save({ applied: 7 });

      await assert.rejects(fixture.make().open(), DataPathLockedError);
      await first.close();
      const second = fixture.make();
      const state = await second.open();
      await second.close();

      assert.equal(state.applied, 7);
    }),
  );

  Deno.test(
    `${name}.stats() counts bytes written since open`,
    withFixture(async (fixture) => {
      const storage = fixture.make();
      await storage.open();
      const before = storage.stats();
      await storage.save({ applied: 1 });
      const after = storage.stats();
      await storage.close();

      assert.deepEqual(before, { saves: 0, syncs: 0, bytesWritten: 0 });
      assert.equal(after.saves, 1);
      assert.equal(after.syncs, 1);
      assert.ok(after.bytesWritten > 0);
    }),
  );
}

// FileStorage only

/** A temporary data directory with helpers to look at its segments. */
async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lilraft-wal-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function segmentPath(dir: string, sequence: number): string {
  return join(dir, `wal-${String(sequence).padStart(16, "0")}.log`);
}

/** Saves one entry per call, each in its own round. */
async function writeLog(
  dir: string,
  count: number,
  segmentBytesMax?: number,
): Promise<void> {
  const options = segmentBytesMax ? { segmentBytesMax } : {};
  const storage = new FileStorage(dir, options);
  await storage.open();
  for (let index = 1; index <= count; index++) {
    await storage.save({ entries: [entry(index, 1, "x".repeat(20))] });
  }
  await storage.close();
}

/** The bytes of one entry record as `writeLog` writes it (indexes 1–9). */
const recordBytes = 8 + 1 + JSON.stringify([1, 1, 1, "x".repeat(20)]).length;

/** Frames a record by hand, as the write-ahead log does. */
function frame(type: number, payload: string): Uint8Array {
  const body = new TextEncoder().encode(payload);
  const bytes = new Uint8Array(9 + body.length);
  bytes[8] = type;
  bytes.set(body, 9);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, body.length + 1, true);
  view.setUint32(4, crc32(bytes.subarray(8)), true);
  return bytes;
}

async function append(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(path, bytes, { append: true });
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[offset] = bytes[offset]! ^ 0x04;
  await Deno.writeFile(path, bytes);
}

async function openEntries(dir: string, logger?: Logger): Promise<Entry[]> {
  const storage = new FileStorage(dir, logger ? { logger } : {});
  const state = await storage.open();
  await storage.close();
  return state.entries.map((item) => ({ ...item }));
}

function logEntries(count: number): Entry[] {
  const made: Entry[] = [];
  for (let index = 1; index <= count; index++) {
    made.push(entry(index, 1, "x".repeat(20)));
  }
  return made;
}

Deno.test("FileStorage.open() cuts a torn tail", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 3);
    const path = segmentPath(dir, 1);
    const partial = frame(1, JSON.stringify([4, 1, 1, "y".repeat(40)]));
    await append(path, partial.subarray(0, 20));
    const { logger, lines } = recordingLogger();

    const loaded = await openEntries(dir, logger);

    assert.deepEqual(loaded, logEntries(3));
    assert.equal((await Deno.stat(path)).size, 3 * recordBytes);
    assert.deepEqual(lines[0], {
      level: "info",
      message: "cut torn tail of write-ahead log",
      fields: { file: path, offset: 3 * recordBytes, bytes: 20 },
    });
  });
});

Deno.test("FileStorage.open() cuts a tail whose header is cut", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 2);
    const path = segmentPath(dir, 1);
    await append(path, new Uint8Array([9, 0, 0, 0, 1]));

    const loaded = await openEntries(dir);

    assert.deepEqual(loaded, logEntries(2));
    assert.equal((await Deno.stat(path)).size, 2 * recordBytes);
  });
});

Deno.test("FileStorage.open() cuts a last record that fails its checksum", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 3);
    const path = segmentPath(dir, 1);
    await flipByte(path, 3 * recordBytes - 2);

    const loaded = await openEntries(dir);

    assert.deepEqual(loaded, logEntries(2));
    assert.equal((await Deno.stat(path)).size, 2 * recordBytes);
  });
});

Deno.test("FileStorage.open() cuts a tail of zeros", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 2);
    const path = segmentPath(dir, 1);
    await append(path, new Uint8Array(4096));

    const loaded = await openEntries(dir);

    assert.deepEqual(loaded, logEntries(2));
    assert.equal((await Deno.stat(path)).size, 2 * recordBytes);
  });
});

Deno.test("FileStorage.save() appends after a cut tail", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 2);
    await append(segmentPath(dir, 1), new Uint8Array([1, 2, 3]));
    const storage = new FileStorage(dir);
    await storage.open();
    await storage.save({ entries: [entry(3, 1, "x".repeat(20))] });
    await storage.close();

    assert.deepEqual(await openEntries(dir), logEntries(3));
  });
});

Deno.test("FileStorage.open() refuses a bit flip in an earlier segment", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 6, 3 * recordBytes);
    const path = segmentPath(dir, 1);
    // The last record of a segment that is not the last one is no tail.
    await flipByte(path, 3 * recordBytes - 2);

    await assert.rejects(openEntries(dir), {
      name: "CorruptLogError",
      message: "Cannot open write-ahead log as a record is damaged: " +
        `${path} at offset ${2 * recordBytes} (checksum mismatch)`,
    });
    assert.equal((await Deno.stat(path)).size, 3 * recordBytes);
  });
});

Deno.test("FileStorage.open() refuses a bit flip before the last record", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 3);
    const path = segmentPath(dir, 1);
    await flipByte(path, recordBytes + 12);

    const error = await openEntries(dir).catch((error) => error);

    assert.ok(error instanceof CorruptLogError);
    assert.equal(
      error.message,
      "Cannot open write-ahead log as a record is damaged: " +
        `${path} at offset ${recordBytes} (checksum mismatch)`,
    );
    assert.equal((await Deno.stat(path)).size, 3 * recordBytes);
  });
});

Deno.test("FileStorage.open() refuses a length that hides later records", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 3);
    const path = segmentPath(dir, 1);
    await flipByte(path, recordBytes + 2);

    await assert.rejects(openEntries(dir), {
      name: "CorruptLogError",
      message: "Cannot open write-ahead log as a record is damaged: " +
        `${path} at offset ${recordBytes} (length runs past the end)`,
    });
  });
});

Deno.test("FileStorage.open() refuses an entry that leaves a gap", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 2);
    const path = segmentPath(dir, 1);
    await append(path, frame(1, JSON.stringify([4, 1, 1, "z"])));
    await append(path, frame(3, "1"));

    await assert.rejects(openEntries(dir), {
      name: "CorruptLogError",
      message: "Cannot open write-ahead log as a record is damaged: " +
        `${path} at offset ${2 * recordBytes} (entry 4 leaves a gap after 2)`,
    });
  });
});

Deno.test("FileStorage.open() refuses a record of unknown shape", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 1);
    const path = segmentPath(dir, 1);
    await append(path, frame(2, JSON.stringify({ term: 1 })));

    await assert.rejects(openEntries(dir), {
      name: "CorruptLogError",
      message: "Cannot open write-ahead log as a record is damaged: " +
        `${path} at offset ${recordBytes} (hard state is not a 3-element array)`,
    });
  });
});

Deno.test("FileStorage.open() refuses a missing segment", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 9, 3 * recordBytes);
    await Deno.remove(segmentPath(dir, 2));

    await assert.rejects(openEntries(dir), {
      name: "CorruptLogError",
      message: "Cannot open write-ahead log as a segment is missing: " +
        segmentPath(dir, 2),
    });
  });
});

Deno.test("FileStorage.open() names the lock file it cannot take", async () => {
  await withDir(async (dir) => {
    const first = new FileStorage(dir);
    await first.open();

    await assert.rejects(new FileStorage(dir).open(), {
      name: "DataPathLockedError",
      message: "Cannot open data path as another server holds its lock: " +
        join(dir, "LOCK"),
    });
    await first.close();
  });
});

Deno.test("FileStorage.close() during open() releases the lock", async () => {
  await withDir(async (dir) => {
    const first = new FileStorage(dir);
    const opening = first.open();
    await first.close();
    await opening;

    const second = new FileStorage(dir);
    const state = await second.open();
    await second.close();

    assert.equal(state.entries.length, 0);
    await assert.rejects(first.open(), {
      message: "Cannot open storage as it was opened: closed",
    });
  });
});

Deno.test("FileStorage.save() starts a new segment at the size limit", async () => {
  await withDir(async (dir) => {
    await writeLog(dir, 9, 3 * recordBytes);
    const names = [];
    for await (const item of Deno.readDir(dir)) names.push(item.name);

    const loaded = await openEntries(dir);

    assert.deepEqual(names.sort(), [
      "LOCK",
      "wal-0000000000000001.log",
      "wal-0000000000000002.log",
      "wal-0000000000000003.log",
    ]);
    for (const sequence of [1, 2, 3]) {
      const size = (await Deno.stat(segmentPath(dir, sequence))).size;
      assert.equal(size, 3 * recordBytes);
    }
    assert.deepEqual(loaded, logEntries(9));
  });
});

Deno.test("FileStorage.open() logs a summary", async () => {
  await withDir(async (dir) => {
    const storage = new FileStorage(dir, { segmentBytesMax: 3 * recordBytes });
    await storage.open();
    await storage.save({ entries: logEntries(4) });
    await storage.save({ hardState: { term: 5, vote: 2, commit: 4 } });
    await storage.close();
    const { logger, lines } = recordingLogger();

    await openEntries(dir, logger);

    assert.deepEqual(lines, [{
      level: "info",
      message: "opened write-ahead log",
      fields: { dir, segments: 2, entries: 4, lastIndex: 4, term: 5 },
    }]);
  });
});

// MemoryStorage only

/** A sync hook that the test releases by hand. */
function gatedSync(): { sync: () => Promise<void>; release: () => void } {
  let gates: (() => void)[] = [];
  return {
    sync: () => new Promise((resolve) => gates.push(resolve)),
    release: () => {
      const open = gates;
      gates = [];
      for (const resolve of open) resolve();
    },
  };
}

Deno.test("MemoryStorage.crash() drops unsynced saves and keeps synced ones", async () => {
  const gate = gatedSync();
  let gated = false;
  const storage = new MemoryStorage({
    sync: () => gated ? gate.sync() : Promise.resolve(),
  });
  await storage.open();
  await storage.save({ entries: entries(1, 2, 1), applied: 1 });
  gated = true;
  let settled = 0;
  const mark = () => settled++;
  storage.save({ entries: [entry(3, 1)] }).then(mark, mark);
  storage.save({ hardState: { term: 9, vote: 1, commit: 3 } }).then(mark, mark);

  storage.crash();
  gate.release();
  await nextMacrotask();
  const state = await storage.open();

  assert.equal(settled, 0);
  assert.deepEqual(state, {
    hardState: emptyHardState,
    applied: 1,
    entries: entries(1, 2, 1),
  });
});

Deno.test("MemoryStorage.save() queues calls made during a sync for the next round", async () => {
  const gate = gatedSync();
  let syncs = 0;
  const storage = new MemoryStorage({
    sync: () => {
      syncs++;
      return gate.sync();
    },
  });
  await storage.open();
  const first = storage.save({ entries: [entry(1, 1)] });
  await nextMacrotask();
  const later = [
    storage.save({ entries: [entry(2, 1)] }),
    storage.save({ entries: [entry(3, 1)] }),
  ];
  gate.release();
  await first;
  await nextMacrotask();
  gate.release();
  await Promise.all(later);

  assert.equal(syncs, 2);
  assert.equal(storage.stats().syncs, 2);
  await storage.close();
  assert.deepEqual((await storage.open()).entries, entries(1, 3, 1));
});

Deno.test("MemoryStorage.save() fails the storage when a sync fails", async () => {
  const failure = new Error("disk on fire");
  let failing = true;
  const storage = new MemoryStorage({
    sync: () => failing ? Promise.reject(failure) : Promise.resolve(),
  });
  await storage.open();

  const first = await storage.save({ applied: 1 }).catch((error) => error);
  const second = await storage.save({ applied: 2 }).catch((error) => error);
  failing = false;
  storage.crash();
  const state = await storage.open();
  await storage.save({ applied: 3 });

  assert.equal(first.message, "Cannot sync memory storage: disk on fire");
  assert.equal(first.cause, failure);
  assert.equal(
    second.message,
    "Cannot save as an earlier write failed: " +
      "Cannot sync memory storage: disk on fire",
  );
  assert.equal(second.cause, first);
  assert.equal(state.applied, 0);
  await storage.close();
  assert.equal((await storage.open()).applied, 3);
});

Deno.test("MemoryStorage.open() returns copies the caller may change", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  const batch = { entries: [entry(1, 1)] };
  await storage.save(batch);
  batch.entries[0]!.data = "changed";
  await storage.close();

  const state = await storage.open();
  state.entries[0]!.data = "changed again";
  await storage.close();

  assert.deepEqual((await storage.open()).entries, [entry(1, 1)]);
});
