// Turns Prometheus range results into the column layout uPlot draws.
import type { RangeSeries } from "./api";

export type Columns = [number[], ...(number | null)[][]];

/** One timestamp column for the grid start, start+step, … ≤ end, then one value column per series. */
export function toColumns(results: RangeSeries[][], start: number, end: number, step: number): Columns {
  const times: number[] = [];
  for (let k = 0; start + k * step <= end + 1e-6; k++) times.push(round3(start + k * step));
  const columns: (number | null)[][] = [];
  for (const group of results) {
    for (const series of group) {
      const column: (number | null)[] = new Array(times.length).fill(null);
      for (const [t, v] of series.values) {
        const index = Math.round((t - start) / step);
        if (index >= 0 && index < times.length) {
          const value = Number(v);
          column[index] = Number.isFinite(value) ? value : null;
        }
      }
      columns.push(column);
    }
  }
  return [times, ...columns];
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * The evaluation grid for [from, to]: it ends exactly at `to`, so a live chart's last point is
 * "now" and a sample collected a moment ago is already on it.
 */
export function alignRange(from: number, to: number, step: number): { start: number; end: number } {
  const end = round3(to);
  const steps = Math.max(1, Math.floor((to - from) / step));
  return { start: round3(end - steps * step), end };
}
