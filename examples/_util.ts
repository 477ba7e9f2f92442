/**
 * Small helpers the demos share: free ports, polling with a deadline, and
 * printing.
 *
 * @module
 */

/** Ports that were free a moment ago on 127.0.0.1. */
export function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return ports;
}

/**
 * Polls `probe` every 20 ms until it returns something truthy.
 *
 * @throws {Error} naming `what` after `timeoutMs`.
 */
export async function waitUntil<T>(
  probe: () => T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = probe();
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Prints one line of the demo's story on standard output. */
export function say(line: string): void {
  console.log(line);
}
