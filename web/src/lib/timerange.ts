// The time range of a page, kept in the URL: `range=1h` (relative, follows now) or
// `from=<ms>&to=<ms>` (fixed, from the custom picker or a drag-zoom on a chart).
import { useEffect, useState } from "react";
import { queryRange, stepFor, type RangeSeries } from "./api";
import { parseDuration } from "./format";
import { useLocation } from "./router";
import { alignRange, toColumns, type Columns } from "./series";

export const PRESETS = ["15m", "1h", "6h", "24h", "7d"] as const;

export interface TimeRange {
  /** Seconds since the epoch. */
  from: number;
  to: number;
  /** Set for relative ranges ("1h"); undefined for fixed ones. */
  preset: string | undefined;
}

export function rangeFromParams(params: URLSearchParams, now: number, fallback = "1h"): TimeRange {
  const from = Number(params.get("from"));
  const to = Number(params.get("to"));
  if (params.has("from") && params.has("to") && Number.isFinite(from) && Number.isFinite(to) && to > from) {
    return { from: from / 1000, to: to / 1000, preset: undefined };
  }
  const preset = params.get("range") ?? fallback;
  const seconds = parseDuration(preset) ?? parseDuration(fallback) ?? 3600;
  return { from: now / 1000 - seconds, to: now / 1000, preset };
}

/**
 * How often a relative range moves on (ms): every second for an hour or less, so a sample is on
 * the chart within about a second of arriving; less often for longer ranges, whose step is wider
 * (a 7-day chart gains a point every ~40 minutes).
 */
export function refreshEvery(seconds: number): number {
  return Math.max(1000, (seconds / 3600) * 1000);
}

export function useTimeRange(fallback = "1h"): TimeRange {
  const { params } = useLocation();
  const key = params.toString();
  const [now, setNow] = useState(() => Date.now());
  const span = rangeFromParams(params, now, fallback);
  const every = refreshEvery(span.to - span.from);
  const relative = span.preset !== undefined;
  useEffect(() => setNow(Date.now()), [key]);
  // Relative ranges follow the clock; fixed ones (custom, zoomed) stay put.
  useEffect(() => {
    if (!relative) return;
    const timer = window.setInterval(() => setNow(Date.now()), every);
    return () => window.clearInterval(timer);
  }, [relative, every]);
  return span;
}

export interface QueryResult {
  columns: Columns | undefined;
  /** The label set of each value column, in order. */
  metrics: Record<string, string>[];
  /** Per query, how many columns it produced. */
  counts: number[];
  error: string | undefined;
  loading: boolean;
  step: number;
}

/** Runs the queries over the range, again on every live tick while the range is relative. */
export function useRangeQueries(queries: string[], range: TimeRange, points = 240): QueryResult {
  const [result, setResult] = useState<QueryResult>({
    columns: undefined,
    metrics: [],
    counts: [],
    error: undefined,
    loading: true,
    step: 0,
  });
  const key = queries.join("\u0000");
  const duration = range.to - range.from;
  const step = stepFor(duration, points);
  // Relative ranges refresh on each tick: round "to" to the step so an unchanged grid is not refetched.
  const { start, end } = alignRange(range.from, range.to, step);

  useEffect(() => {
    const controller = new AbortController();
    const list = key.split("\u0000").filter(Boolean);
    Promise.all(list.map((q) => queryRange(q, start, end, step, controller.signal)))
      .then((groups: RangeSeries[][]) => {
        setResult({
          columns: toColumns(groups, start, end, step),
          metrics: groups.flatMap((g) => g.map((s) => s.metric)),
          counts: groups.map((g) => g.length),
          error: undefined,
          loading: false,
          step,
        });
      })
      .catch((error: unknown) => {
        if (controller.signal.aborted) return;
        setResult((r) => ({ ...r, error: error instanceof Error ? error.message : String(error), loading: false }));
      });
    return () => controller.abort();
  }, [key, start, end, step]);

  return result;
}
