/**
 * A transport wrapper that writes every message to the run's trace.
 *
 * @module
 */

import type { Member, Message, NodeId } from "../core/types.ts";
import type {
  ForwardReply,
  ForwardRequest,
  Transport,
  TransportHandlers,
} from "../transport/transport.ts";

/** A transport that reports what it sends and receives to a trace. */
export class TracedTransport implements Transport {
  readonly #inner: Transport;
  readonly #trace: (line: string) => void;

  constructor(inner: Transport, trace: (line: string) => void) {
    this.#inner = inner;
    this.#trace = trace;
  }

  start(self: NodeId, handlers: TransportHandlers): Promise<void> {
    const receive = (messages: Message[]) => {
      for (const message of messages) this.#trace(`recv ${show(message)}`);
      handlers.receive(messages);
    };
    return this.#inner.start(self, { ...handlers, receive });
  }

  setPeers(members: Member[]): void {
    this.#inner.setPeers(members);
  }

  send(messages: Message[]): void {
    for (const message of messages) this.#trace(`send ${show(message)}`);
    this.#inner.send(messages);
  }

  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply> {
    this.#trace(`forward ${request.kind} to ${to}`);
    return this.#inner.forward(to, request, timeoutMs);
  }

  stop(): Promise<void> {
    return this.#inner.stop();
  }
}

function show(message: Message): string {
  const head = `${message.type} ${message.from}>${message.to} t${message.term}`;
  switch (message.type) {
    case "vote":
      return `${head} pre=${message.pre} last=${message.lastIndex}/` +
        `${message.lastTerm} transfer=${message.transfer}`;
    case "voteResponse":
      return `${head} pre=${message.pre} granted=${message.granted}`;
    case "append":
      return `${head} prev=${message.prevIndex}/${message.prevTerm} ` +
        `n=${message.entries.length} commit=${message.commit}`;
    case "appendResponse":
      return `${head} ok=${message.success} match=${message.matchIndex} ` +
        `rejected=${message.rejectedIndex}`;
    case "heartbeat":
      return `${head} commit=${message.commit} round=${message.round}`;
    case "heartbeatResponse":
      return `${head} round=${message.round}`;
    case "timeoutNow":
      return head;
  }
}
