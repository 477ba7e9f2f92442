/**
 * Seeded pseudo-random helpers. Every choice of a run draws from these, so
 * the order of the calls is part of what a seed replays.
 *
 * @module
 */

/** A seeded random source returning numbers in [0, 1). */
export type Random = () => number;

/** The sfc32 generator, warmed up; only the low 32 bits of `seed` count. */
export function sfc32(seed: number): Random {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0, b >>>= 0, c >>>= 0, d >>>= 0;
    const t = (a + b | 0) + d | 0;
    d = d + 1 | 0;
    a = b ^ b >>> 9;
    b = c + (c << 3) | 0;
    c = c << 21 | c >>> 11;
    c = c + t | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let round = 0; round < 12; round++) next();
  return next;
}

/** An integer in [0, below). One draw. */
export function randomInt(random: Random, below: number): number {
  return Math.floor(random() * below);
}

/** One of `items`, or undefined when there are none. One draw. */
export function pick<T>(random: Random, items: readonly T[]): T | undefined {
  return items[randomInt(random, items.length)];
}

/** An independent generator seeded from `random`. One draw. */
export function forkRandom(random: Random): Random {
  return sfc32(randomInt(random, 2 ** 32));
}

/** A shuffled copy of `items` (Fisher–Yates, from the end). */
export function shuffle<T>(random: Random, items: readonly T[]): T[] {
  const copy = [...items];
  for (let at = copy.length - 1; at > 0; at--) {
    const other = randomInt(random, at + 1);
    [copy[at], copy[other]] = [copy[other]!, copy[at]!];
  }
  return copy;
}
