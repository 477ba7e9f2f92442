/**
 * The cluster a server belongs to, as the user describes it.
 *
 * @module
 */

import { validateMembers } from "./core/membership.ts";
import type { Member, NodeId } from "./core/types.ts";

/** A cluster node reached over HTTP at `url`. */
export class HttpNode implements Member {
  /** The node's id: a positive integer, unique in the cluster. */
  readonly id: NodeId;
  /** Base URL of the node's HTTP listener, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;

  /**
   * Describes one node.
   *
   * @param id A positive integer, unique in the cluster.
   * @param url Base URL of the node, without a trailing slash.
   */
  constructor(id: NodeId, url: string) {
    this.id = id;
    this.url = url.replace(/\/+$/, "");
  }
}

/** The nodes of a cluster. */
export class Config {
  /** The nodes, in the order given. */
  readonly nodes: readonly HttpNode[];

  /**
   * Describes a cluster.
   *
   * @param nodes At least one node; ids and URLs unique.
   * @throws {TypeError} when the list is empty or has duplicates.
   */
  constructor(...nodes: HttpNode[]) {
    validateMembers(nodes, "configuration");
    this.nodes = nodes;
  }

  /** The nodes as plain members. */
  members(): Member[] {
    return this.nodes.map(({ id, url }) => ({ id, url }));
  }
}
