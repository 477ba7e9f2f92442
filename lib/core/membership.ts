/**
 * Membership configurations as the core sees them: which members exist,
 * who votes, and how configuration entries are encoded.
 *
 * @module
 */

import { Quorum } from "./quorum.ts";
import type { ConfigData, Member, NodeId } from "./types.ts";

/** A decoded configuration entry: its voters, addresses and quorum. */
export class Membership {
  /** The decoded entry data. */
  readonly data: ConfigData;
  /** The quorum rule of this configuration. */
  readonly quorum: Quorum;

  /** @param data Members, and the outgoing members while joint. */
  constructor(data: ConfigData) {
    this.data = data;
    this.quorum = new Quorum(
      data.members.map((member) => member.id),
      (data.old ?? []).map((member) => member.id),
    );
  }

  /** A configuration without members: a node waiting to join. */
  static empty(): Membership {
    return new Membership({ members: [] });
  }

  /**
   * Decodes a configuration entry's data.
   *
   * @throws {TypeError} when the data is not a valid configuration.
   */
  static decode(data: string): Membership {
    const parsed = JSON.parse(data) as ConfigData;
    validateMembers(parsed.members, "members");
    if (parsed.old !== undefined) validateMembers(parsed.old, "old");
    return new Membership(parsed);
  }

  /** Encodes `data` canonically: members sorted by id. */
  static encode(data: ConfigData): string {
    const sorted = (members: Member[]) =>
      [...members].sort((a, b) => a.id - b.id).map(({ id, url }) => ({
        id,
        url,
      }));
    const canonical: ConfigData = { members: sorted(data.members) };
    if (data.old) canonical.old = sorted(data.old);
    return JSON.stringify(canonical);
  }

  /** Whether the configuration is joint (C_old,new). */
  get joint(): boolean {
    return this.quorum.joint;
  }

  /** Every member of either set, each once, sorted by id. */
  members(): Member[] {
    const byId = new Map<NodeId, Member>();
    for (const member of [...(this.data.old ?? []), ...this.data.members]) {
      byId.set(member.id, member);
    }
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }

  /** Whether `id` votes in this configuration. */
  isVoter(id: NodeId): boolean {
    return this.quorum.includes(id);
  }
}

/**
 * Checks a proposed member list: non-empty, positive integer ids, no
 * duplicate ids or URLs, URLs that parse as http(s).
 *
 * @throws {TypeError} naming the offending member.
 */
export function validateMembers(members: unknown, what = "members"): void {
  if (!Array.isArray(members) || members.length === 0) {
    throw new TypeError(`Invalid ${what}: expected a non-empty list`);
  }
  const ids = new Set<number>();
  const urls = new Set<string>();
  for (const member of members as Member[]) {
    const { id, url } = member ?? {};
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new TypeError(`Invalid ${what}: id must be a positive integer`);
    }
    if (typeof url !== "string" || !/^https?:\/\/[^/]+/.test(url)) {
      throw new TypeError(`Invalid ${what}: node ${id} has a bad URL "${url}"`);
    }
    if (ids.has(id)) {
      throw new TypeError(`Invalid ${what}: node id ${id} appears twice`);
    }
    if (urls.has(url)) {
      throw new TypeError(`Invalid ${what}: URL ${url} appears twice`);
    }
    ids.add(id);
    urls.add(url);
  }
}
