/**
 * A latency histogram with 10 µs buckets up to 10 s, mergeable across
 * processes.
 *
 * @module
 */

const bucketMs = 0.01;
const bucketsMax = 1_000_000;

/** Latencies in milliseconds. */
export class Histogram {
  #counts = new Map<number, number>();
  #count = 0;
  #max = 0;

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const bucket = Math.min(Math.floor(ms / bucketMs), bucketsMax);
    this.#counts.set(bucket, (this.#counts.get(bucket) ?? 0) + 1);
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** Adds a histogram produced by {@linkcode toJSON}. */
  merge(data: { counts: [number, number][]; max: number }): void {
    for (const [bucket, count] of data.counts) {
      this.#counts.set(bucket, (this.#counts.get(bucket) ?? 0) + count);
      this.#count += count;
    }
    this.#max = Math.max(this.#max, data.max);
  }

  /** The latency at quantile `q` in [0, 1], in milliseconds. */
  quantile(q: number): number {
    const target = Math.ceil(q * this.#count);
    let seen = 0;
    const buckets = [...this.#counts.keys()].sort((a, b) => a - b);
    for (const bucket of buckets) {
      seen += this.#counts.get(bucket)!;
      if (seen >= target) return (bucket + 1) * bucketMs;
    }
    return this.#max;
  }

  /** The largest latency recorded. */
  get max(): number {
    return this.#max;
  }

  /** A plain form for sending between processes. */
  toJSON(): { counts: [number, number][]; max: number } {
    return { counts: [...this.#counts], max: this.#max };
  }
}
