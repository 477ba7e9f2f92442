/**
 * The linearizability check of a client history: Wing & Gong's search
 * with Lowe's memo, one key at a time.
 *
 * @module
 */

import type { Model } from "./_types.ts";

/** One operation of a client history, as the linearizability check sees it. */
export interface HistoryOperation {
  /** Partition of the history; operations of different keys commute. */
  key: string;
  /** The model's input. */
  input: unknown;
  /** The observed output; ignored while `pending`. */
  output: unknown;
  /** When the call started (any increasing clock). */
  call: number;
  /** When it returned; ignored while `pending`. */
  ret: number;
  /** The outcome is unknown: the operation may take effect or not. */
  pending: boolean;
}

/** The verdict of {@linkcode checkLinearizable}. */
export interface LinearizabilityResult {
  /** True if linearizable, false if not, null if the search gave up. */
  ok: boolean | null;
  /** The key whose history failed, when one did. */
  key?: string;
}

/**
 * The verdict over `history`, key by key in key order; see
 * `checkLinearizable` in `../testing.ts`.
 */
export function linearizable<S>(
  history: readonly HistoryOperation[],
  model: Model<S>,
  budget: number,
): LinearizabilityResult {
  const byKey = new Map<string, HistoryOperation[]>();
  for (const operation of history) {
    const list = byKey.get(operation.key) ?? [];
    list.push(operation);
    byKey.set(operation.key, list);
  }
  let gaveUp = false;
  for (const [key, operations] of [...byKey].sort(byFirst)) {
    const ok = searchKey(operations, model, budget);
    if (ok === false) return { ok: false, key };
    if (ok === null) gaveUp = true;
  }
  return { ok: gaveUp ? null : true };
}

function byFirst<T>(a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

interface Node {
  operation: number;
  isCall: boolean;
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

/** Builds the doubly linked list of call and return events, by time. */
function eventList(operations: HistoryOperation[]): Node {
  const events: { time: number; node: Node }[] = [];
  operations.forEach((operation, index) => {
    const call: Node = {
      operation: index,
      isCall: true,
      match: null,
      prev: null,
      next: null,
    };
    events.push({ time: operation.call, node: call });
    if (operation.pending) return;
    const ret: Node = { ...call, isCall: false };
    call.match = ret;
    events.push({ time: operation.ret, node: ret });
  });
  // Calls sort before returns at the same time: concurrent, not ordered.
  events.sort((a, b) =>
    a.time - b.time || Number(a.node.isCall ? 0 : 1) -
      Number(b.node.isCall ? 0 : 1)
  );
  const head: Node = {
    operation: -1,
    isCall: false,
    match: null,
    prev: null,
    next: null,
  };
  let last = head;
  for (const { node } of events) {
    node.prev = last;
    last.next = node;
    last = node;
  }
  return head;
}

function lift(node: Node): void {
  node.prev!.next = node.next;
  if (node.next) node.next.prev = node.prev;
  const match = node.match;
  if (match) {
    match.prev!.next = match.next;
    if (match.next) match.next.prev = match.prev;
  }
}

function unlift(node: Node): void {
  const match = node.match;
  if (match) {
    match.prev!.next = match;
    if (match.next) match.next.prev = match;
  }
  node.prev!.next = node;
  if (node.next) node.next.prev = node;
}

/** Wing & Gong's search with Lowe's memo; null when over budget. */
function searchKey<S>(
  operations: HistoryOperation[],
  model: Model<S>,
  budget: number,
): boolean | null {
  const head = eventList(operations);
  const linearized = new Uint32Array(Math.ceil(operations.length / 32) + 1);
  const seen = new Set<string>();
  const stack: { node: Node; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  for (let steps = 0; steps < budget; steps++) {
    if (entry === null) return true;
    if (!entry.isCall) {
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized[top.node.operation >> 5]! &= ~(1 << (top.node.operation & 31));
      unlift(top.node);
      entry = top.node.next;
      continue;
    }
    const operation = operations[entry.operation]!;
    const [after, output] = model.step(state, operation.input);
    if (operation.pending || sameJson(output, operation.output)) {
      const bit = 1 << (entry.operation & 31);
      linearized[entry.operation >> 5]! |= bit;
      const key = `${linearized.join(",")}|${JSON.stringify(after)}`;
      if (!seen.has(key)) {
        seen.add(key);
        stack.push({ node: entry, state });
        state = after;
        lift(entry);
        entry = head.next;
        continue;
      }
      linearized[entry.operation >> 5]! &= ~bit;
    }
    entry = entry.next;
  }
  return null;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
