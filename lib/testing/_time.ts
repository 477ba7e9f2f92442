/**
 * Virtual time: one event queue shared by the whole run, and a per-node
 * view of it whose timers die with the node.
 *
 * @module
 */

import type { Clock } from "../clock.ts";

/** A scheduled callback; ties in time run in scheduling order. */
export interface TimedEvent {
  time: number;
  sequence: number;
  run: () => void;
  cancelled: boolean;
  owner: NodeClock | undefined;
}

/** One shared virtual clock: a queue of events ordered by time. */
export class VirtualTime {
  now = 0;
  #heap: TimedEvent[] = [];
  #sequence = 0;

  /** Schedules `run` at `time`, or now if that has passed. */
  at(time: number, run: () => void, owner?: NodeClock): TimedEvent {
    const event = {
      time: Math.max(time, this.now),
      sequence: this.#sequence++,
      run,
      cancelled: false,
      owner,
    };
    this.#push(event);
    return event;
  }

  /** The next live event due by `limit`, removed from the queue. */
  next(limit: number): TimedEvent | undefined {
    while (this.#heap.length > 0) {
      const event = this.#heap[0]!;
      if (event.cancelled || event.owner?.dead) {
        this.#pop();
        continue;
      }
      if (event.time > limit) return undefined;
      return this.#pop();
    }
    return undefined;
  }

  #push(event: TimedEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let at = heap.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!before(heap[at]!, heap[parent]!)) break;
      [heap[at], heap[parent]] = [heap[parent]!, heap[at]!];
      at = parent;
    }
  }

  #pop(): TimedEvent {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    heap[0] = last;
    let at = 0;
    while (true) {
      const left = 2 * at + 1;
      const right = left + 1;
      let least = at;
      if (left < heap.length && before(heap[left]!, heap[least]!)) least = left;
      if (right < heap.length && before(heap[right]!, heap[least]!)) {
        least = right;
      }
      if (least === at) return top;
      [heap[at], heap[least]] = [heap[least]!, heap[at]!];
      at = least;
    }
  }
}

function before(a: TimedEvent, b: TimedEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
}

/** One node's view of the virtual clock; its timers die with the node. */
export class NodeClock implements Clock {
  dead = false;
  readonly #time: VirtualTime;

  constructor(time: VirtualTime) {
    this.#time = time;
  }

  now(): number {
    return this.#time.now;
  }

  setTimer(run: () => void, ms: number): unknown {
    return this.#time.at(this.#time.now + Math.max(0, ms), run, this);
  }

  clearTimer(handle: unknown): void {
    if (handle && typeof handle === "object" && "cancelled" in handle) {
      (handle as TimedEvent).cancelled = true;
    }
  }
}
