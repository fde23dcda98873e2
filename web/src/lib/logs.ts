// The log API's types and the pure helpers of the Logs page (highlighting, filters).

export type Level = "debug" | "info" | "warning" | "error" | "critical";
export const LEVELS: Level[] = ["critical", "error", "warning", "info", "debug"];

export interface LogHit {
  id: number;
  timestamp: string;
  level: Level;
  category: string;
  message: string;
  module?: string;
  function?: string;
  line?: number;
  request_id?: string;
  user_id?: string;
  service?: string;
  host?: string;
  fields?: Record<string, unknown>;
  /** Matched words of `message` as [start, end) offsets in characters (code points). */
  highlights: [number, number][];
}

export interface SearchPage {
  hits: LogHit[];
  next_cursor: string | null;
  examined: number;
  took_ms: number;
}

export interface LogBucket {
  start: number;
  total: number;
  levels: Record<string, number>;
  categories: Record<string, number>;
  errors: number;
  error_rate: number;
  bytes: number;
}

export interface LogStats {
  from: number;
  to: number;
  step: number;
  total: number;
  levels: Record<string, number>;
  categories: Record<string, number>;
  buckets: LogBucket[];
  top_messages: { template: string; count: number; level: Level }[];
}

export interface Segment {
  text: string;
  hit: boolean;
}

/** Splits a message into plain and highlighted parts; offsets count code points, not UTF-16 units. */
export function highlight(message: string, ranges: [number, number][]): Segment[] {
  const chars = Array.from(message);
  const sorted = [...ranges].filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: Segment[] = [];
  let at = 0;
  for (const [start, end] of sorted) {
    const s = Math.max(start, at);
    const e = Math.min(end, chars.length);
    if (e <= s) continue;
    if (s > at) out.push({ text: chars.slice(at, s).join(""), hit: false });
    out.push({ text: chars.slice(s, e).join(""), hit: true });
    at = e;
  }
  if (at < chars.length) out.push({ text: chars.slice(at).join(""), hit: false });
  return out;
}

/** `field:"value"` in the query language, quoting what needs it. */
export function fieldFilter(field: string, value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return `${field}:"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Adds a filter to a query unless it is already there. */
export function addFilter(query: string, filter: string): string {
  const trimmed = query.trim();
  if (trimmed.split(/\s+/).includes(filter)) return trimmed;
  return trimmed ? `${trimmed} ${filter}` : filter;
}

/** Every field of a line, for the expanded view: the model's fields first, then the rest. */
export function lineFields(hit: LogHit): [string, unknown][] {
  const named: [string, unknown][] = [
    ["level", hit.level],
    ["category", hit.category],
    ["service", hit.service],
    ["host", hit.host],
    ["module", hit.module],
    ["function", hit.function],
    ["line", hit.line],
    ["request_id", hit.request_id],
    ["user_id", hit.user_id],
  ];
  return [...named.filter(([, v]) => v !== undefined && v !== null && v !== ""), ...Object.entries(hit.fields ?? {})];
}
