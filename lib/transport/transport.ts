/**
 * The network interface between lilraft nodes.
 *
 * Raft messages travel one way: a response is a message of its own. Client
 * requests that a follower forwards to the leader travel as
 * request/response pairs.
 *
 * @module
 */

import type { Member, Message, NodeId } from "../core/types.ts";

/** A client request forwarded from a follower to the leader. */
export type ForwardRequest =
  | {
    kind: "exec";
    name: string;
    payload: unknown;
    /** The forwarding node, told at once when the entry commits. */
    from?: NodeId;
  }
  | { kind: "readIndex" }
  | { kind: "config"; members: Member[] };

/** The leader's answer to a {@linkcode ForwardRequest}. */
export type ForwardReply =
  | { ok: true; value: unknown }
  | { ok: false; error: { name: string; message: string } };

/** What a transport calls into; implemented by the server. */
export interface TransportHandlers {
  /**
   * Whether messages from this node are accepted at all.
   *
   * @param from The sender's id.
   * @param cluster The sender's cluster id, when it sent one.
   */
  accepts(from: NodeId, cluster?: string): boolean;
  /**
   * The id of the cluster this node belongs to, sent along with Raft
   * messages so that members added while a node was away are recognised.
   */
  clusterId?(): string | undefined;
  /**
   * This node's own URL, sent along with Raft messages so that a receiver
   * that has not yet seen the sender in any configuration can answer it.
   */
  address?(): string | undefined;
  /** Delivers Raft messages that arrived for this node. */
  receive(messages: Message[]): void;
  /** Serves a forwarded client request. */
  forward(request: ForwardRequest): Promise<ForwardReply>;
  /** Reports that messages to `id` could not be delivered. */
  unreachable(id: NodeId): void;
}

/** Moves messages between nodes. */
export interface Transport {
  /** Starts serving and sending for node `self`. */
  start(self: NodeId, handlers: TransportHandlers): Promise<void>;
  /** Updates the address book with the members to talk to. */
  setPeers(members: Member[]): void;
  /**
   * Queues messages for their `to` nodes. Never throws and never waits:
   * delivery is best effort, which Raft tolerates.
   */
  send(messages: Message[]): void;
  /**
   * Sends a forwarded request to `to` and waits for the reply.
   *
   * @throws {Error} when the node cannot be reached within `timeoutMs`.
   */
  forward(
    to: NodeId,
    request: ForwardRequest,
    timeoutMs: number,
  ): Promise<ForwardReply>;
  /** Stops serving and sending. Idempotent. */
  stop(): Promise<void>;
}
