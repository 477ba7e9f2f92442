/**
 * Plain data types shared by the Raft core, storage and transport.
 *
 * Everything here is JSON-serialisable so that it can cross the write-ahead
 * log and the HTTP transport unchanged.
 *
 * @module
 */

/** A node identifier: a positive integer, unique in the cluster. */
export type NodeId = number;

/** What an entry carries. */
export const EntryKind = {
  /** Appended by every new leader to commit entries of earlier terms. */
  Noop: 0,
  /** A user command: `data` is the encoded command. */
  Command: 1,
  /** A membership configuration: `data` is a {@linkcode ConfigData} JSON. */
  Config: 2,
} as const;

/** One of the {@linkcode EntryKind} values. */
export type EntryKind = typeof EntryKind[keyof typeof EntryKind];

/** One log entry. Indexes start at 1; index 0 is the empty prefix. */
export interface Entry {
  /** Position in the log, starting at 1. */
  index: number;
  /** Term of the leader that created the entry. */
  term: number;
  /** What `data` holds. */
  kind: EntryKind;
  /** Opaque payload: an encoded command or configuration. */
  data: string;
}

/** The state that must be durable before a node answers anyone. */
export interface HardState {
  /** Latest term this node has seen. */
  term: number;
  /** Candidate voted for in `term`, or 0 for none. */
  vote: NodeId;
  /** Highest index known to be committed (may lag; never ahead). */
  commit: number;
}

/** A cluster member as recorded in configuration entries. */
export interface Member {
  /** The member's id. */
  id: NodeId;
  /** Where the member listens, e.g. `http://127.0.0.1:8787`. */
  url: string;
}

/**
 * A membership configuration as stored in a configuration entry.
 *
 * While `old` is present the configuration is joint: every decision needs a
 * majority of `members` and a majority of `old`.
 */
export interface ConfigData {
  /** Voters of the (new) configuration. */
  members: Member[];
  /** Voters of the outgoing configuration during a joint change. */
  old?: Member[];
}

/** Fields every message has. */
export interface MessageBase {
  /** Sender. */
  from: NodeId;
  /** Receiver. */
  to: NodeId;
  /** Sender's current term (or, for pre-votes, the term it would use). */
  term: number;
}

/** RequestVote, or its pre-vote rehearsal (dissertation 9.6). */
export interface VoteRequest extends MessageBase {
  /** Discriminant: a vote request. */
  type: "vote";
  /** True for a pre-vote: the receiver changes no state. */
  pre: boolean;
  /** Index of the candidate's last entry. */
  lastIndex: number;
  /** Term of the candidate's last entry. */
  lastTerm: number;
  /**
   * True when the leader asked the candidate to take over: receivers then
   * vote even though they heard from that leader recently.
   */
  transfer: boolean;
}

/** Answer to a {@linkcode VoteRequest}. */
export interface VoteResponse extends MessageBase {
  /** Discriminant: an answer to a vote request. */
  type: "voteResponse";
  /** Echo of the request's `pre`. */
  pre: boolean;
  /** Whether the vote was granted. */
  granted: boolean;
}

/** AppendEntries: replicates entries after (`prevIndex`, `prevTerm`). */
export interface AppendRequest extends MessageBase {
  /** Discriminant: AppendEntries. */
  type: "append";
  /** Index of the entry just before `entries`. */
  prevIndex: number;
  /** Term of the entry at `prevIndex`. */
  prevTerm: number;
  /** Entries to store, contiguous from `prevIndex + 1`. */
  entries: Entry[];
  /** Leader's commit index. */
  commit: number;
}

/** Answer to an {@linkcode AppendRequest}. */
export interface AppendResponse extends MessageBase {
  /** Discriminant: an answer to AppendEntries. */
  type: "appendResponse";
  /** Whether the log matched at `prevIndex` and the entries were stored. */
  success: boolean;
  /** On success: the index up to which the follower matches the leader. */
  matchIndex: number;
  /** On failure: the `prevIndex` of the rejected request. */
  rejectedIndex: number;
  /**
   * On failure, the back-off hint: the term of the follower's entry at
   * `rejectedIndex`, or 0 when its log is shorter than that.
   */
  conflictTerm: number;
  /**
   * On failure: the first index the follower holds of `conflictTerm`, or its
   * last index + 1 when its log is too short.
   */
  conflictIndex: number;
}

/** Leader heartbeat; `round` ties answers to read-index requests. */
export interface HeartbeatRequest extends MessageBase {
  /** Discriminant: a heartbeat. */
  type: "heartbeat";
  /** `min(leader commit, follower match)`: always safe to commit. */
  commit: number;
  /** Leader's heartbeat round; echoed back. */
  round: number;
}

/** Answer to a {@linkcode HeartbeatRequest}. */
export interface HeartbeatResponse extends MessageBase {
  /** Discriminant: an answer to a heartbeat. */
  type: "heartbeatResponse";
  /** Echo of the request's round. */
  round: number;
}

/** A leader's request that the receiver start an election now. */
export interface TimeoutNowRequest extends MessageBase {
  /** Discriminant: hand-over of leadership. */
  type: "timeoutNow";
}

/** Any message exchanged between Raft nodes. */
export type Message =
  | TimeoutNowRequest
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse;

/** The `type` of any {@linkcode Message}. */
export type MessageType = Message["type"];
