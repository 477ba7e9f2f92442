/**
 * Structured logging, injected into every part of lilraft.
 *
 * The library never writes to the console itself: it calls the logger it was
 * given, which is silent unless the caller passes one.
 *
 * @module
 */

/** Key/value context attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger: a constant message plus fields. */
export interface Logger {
  /** Detail useful when debugging; never per entry in a hot path. */
  debug(message: string, fields?: LogFields): void;
  /** Role changes, membership changes, recovery, repairs. */
  info(message: string, fields?: LogFields): void;
  /** Something unexpected that the node survives. */
  warn(message: string, fields?: LogFields): void;
  /** Something the operator must act on. */
  error(message: string, fields?: LogFields): void;
}

/** The levels of {@linkcode Logger}, from most to least verbose. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const levelRank: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

/** A logger that drops everything: the library default. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * Creates a logger that writes one line per call to standard error:
 * time, level, message, then the fields as `key=value`.
 *
 * @param prefix Text put before every message, e.g. `"node 1"`.
 * @param minimum The least severe level printed.
 * @returns The logger.
 *
 * @example Log leader changes of a node
 * ```ts
 * import { stderrLogger } from "./logger.ts";
 * const logger = stderrLogger("node 1", "warn");
 * logger.info("not printed below warn");
 * ```
 */
export function stderrLogger(
  prefix = "",
  minimum: LogLevel = "info",
): Logger {
  const encoder = new TextEncoder();
  const write = (level: LogLevel, message: string, fields?: LogFields) => {
    if (levelRank[level] < levelRank[minimum]) return;
    const time = new Date().toISOString().slice(11, 23);
    const head = prefix ? `${prefix}: ` : "";
    const tail = formatFields(fields);
    const line = `${time} ${level.padEnd(5)} ${head}${message}${tail}\n`;
    Deno.stderr.writeSync(encoder.encode(line));
  };
  return {
    debug: (message, fields) => write("debug", message, fields),
    info: (message, fields) => write("info", message, fields),
    warn: (message, fields) => write("warn", message, fields),
    error: (message, fields) => write("error", message, fields),
  };
}

function formatFields(fields: LogFields | undefined): string {
  if (!fields) return "";
  let text = "";
  for (const [key, value] of Object.entries(fields)) {
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    text += ` ${key}=${shown}`;
  }
  return text;
}
