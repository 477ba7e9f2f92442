/**
 * What a leader knows about one follower's log.
 *
 * @module
 */

/**
 * Replication state of one peer, kept by the leader.
 *
 * In `probe` the leader sends one AppendEntries at a time until it finds
 * where the logs match; in `replicate` it streams entries optimistically,
 * with at most `inflightMax` requests outstanding.
 */
export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  /** Probing for the match point, or streaming. */
  state: "probe" | "replicate" = "probe";
  /** In probe: a request is outstanding, wait for an answer. */
  probeSent = false;
  /** Last index of each outstanding request, in send order. */
  inflight: number[] = [];
  /** Heard from since the last quorum check. */
  active = false;
  /** Highest heartbeat round acknowledged (for read-index). */
  round = 0;
  /** Tell this peer as soon as commit reaches this index; 0 for no. */
  noticeAt = 0;
  /** Replicated to but not voting (catching up before a change). */
  learner: boolean;

  /**
   * @param next The leader's last index + 1.
   * @param learner Whether the peer is a non-voting learner.
   */
  constructor(next: number, learner = false) {
    this.next = next;
    this.learner = learner;
  }

  /** Switches to probing from just after the known match. */
  probe(): void {
    this.state = "probe";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight = [];
  }

  /** Switches to streaming from just after the known match. */
  replicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.inflight = [];
  }

  /** Records that the follower matches up to `index`. */
  acknowledge(index: number): void {
    this.match = Math.max(this.match, index);
    this.next = Math.max(this.next, this.match + 1);
    this.inflight = this.inflight.filter((last) => last > this.match);
  }
}
