/**
 * The simulation campaign runner.
 *
 * ```sh
 * deno task sim --seeds 100000 [--start 1] [--nodes 5] [--faults all]
 * deno task sim --seed 1234 --nodes 5 --faults all --trace
 * ```
 *
 * `--faults` takes `all`, `none` or a comma list of network, partition,
 * crash, disk, membership and handover. Every failure prints its seed and the
 * command that replays it; `--trace` prints the events before the failure.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  allFaults,
  type Fault,
  formatFailure,
  simulate,
  type SimulationResult,
} from "../../lib/testing.ts";
import { registerOptions } from "./register.ts";

interface Campaign {
  start: number;
  count: number;
  nodes: number;
  faults: Fault[];
  trace: number;
  quiet: boolean;
}

function parse(args: string[]): Campaign {
  const { values } = parseArgs({
    args,
    options: {
      seeds: { type: "string", default: "100" },
      seed: { type: "string" },
      start: { type: "string", default: "1" },
      nodes: { type: "string", default: "3" },
      faults: { type: "string", default: "all" },
      trace: { type: "boolean", default: false },
      "trace-lines": { type: "string", default: "300" },
      quiet: { type: "boolean", default: false },
    },
  });
  const single = values.seed !== undefined;
  return {
    start: Number(single ? values.seed : values.start),
    count: single ? 1 : Number(values.seeds),
    nodes: Number(values.nodes),
    faults: parseFaults(values.faults),
    trace: values.trace ? Number(values["trace-lines"]) : 0,
    quiet: values.quiet,
  };
}

function parseFaults(text: string): Fault[] {
  if (text === "all") return [...allFaults];
  if (text === "none") return [];
  const faults = text.split(",").map((name) => name.trim());
  for (const fault of faults) {
    if (!allFaults.includes(fault as Fault)) {
      throw new RangeError(
        `Unknown fault "${fault}": expected all, none or ${allFaults}`,
      );
    }
  }
  return faults as Fault[];
}

function replayCommand(campaign: Campaign): string {
  const faults = campaign.faults.length === allFaults.length
    ? "all"
    : campaign.faults.join(",") || "none";
  return `deno task sim --seed {seed} --nodes ${campaign.nodes} ` +
    `--faults ${faults}`;
}

interface Summary {
  runs: number;
  failures: SimulationResult[];
  events: number;
  completed: number;
  unknown: number;
  crashes: number;
  membershipChanges: number;
  maxTerm: number;
}

async function run(campaign: Campaign): Promise<Summary> {
  const summary: Summary = {
    runs: 0,
    failures: [],
    events: 0,
    completed: 0,
    unknown: 0,
    crashes: 0,
    membershipChanges: 0,
    maxTerm: 0,
  };
  const began = performance.now();
  for (let offset = 0; offset < campaign.count; offset++) {
    const result = await simulate({
      ...registerOptions(),
      seed: campaign.start + offset,
      nodes: campaign.nodes,
      faults: campaign.faults,
      trace: campaign.trace,
      replay: replayCommand(campaign),
    });
    tally(summary, result);
    if (result.failure) console.log(formatFailure(result) + "\n");
    if (!campaign.quiet && summary.runs % 500 === 0) {
      const rate = summary.runs / ((performance.now() - began) / 1000);
      console.log(
        `${summary.runs} runs, ${summary.failures.length} failures, ` +
          `${rate.toFixed(1)} runs/s`,
      );
    }
  }
  return summary;
}

function tally(summary: Summary, result: SimulationResult): void {
  summary.runs++;
  if (result.failure) summary.failures.push(result);
  summary.events += result.stats.events;
  summary.completed += result.stats.completed;
  summary.unknown += result.stats.unknown;
  summary.crashes += result.stats.crashes;
  summary.membershipChanges += result.stats.membershipChanges;
  summary.maxTerm = Math.max(summary.maxTerm, result.stats.maxTerm);
}

function report(summary: Summary, seconds: number): void {
  const runs = summary.runs;
  console.log(
    [
      `runs: ${runs} in ${seconds.toFixed(1)} s ` +
      `(${(runs / seconds).toFixed(1)} runs/s)`,
      `events: ${summary.events} (${(summary.events / runs).toFixed(0)}/run)`,
      `operations completed: ${summary.completed}, ` +
      `unknown outcome: ${summary.unknown}`,
      `crashes: ${summary.crashes}, ` +
      `membership changes: ${summary.membershipChanges}, ` +
      `highest term: ${summary.maxTerm}`,
      `failures: ${summary.failures.length}` +
      (summary.failures.length > 0
        ? ` (seeds ${summary.failures.map((one) => one.seed).join(", ")})`
        : ""),
    ].join("\n"),
  );
}

if (import.meta.main) {
  const campaign = parse(Deno.args);
  const began = performance.now();
  const summary = await run(campaign);
  report(summary, (performance.now() - began) / 1000);
  if (summary.failures.length > 0) Deno.exit(1);
}
