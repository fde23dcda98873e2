// A time-series chart on uPlot: resizes with its box, follows the theme, appends new data in
// place (setData, no re-creation), and reports drag-selections as a zoom.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatValue, type Unit } from "../lib/format";
import type { Columns } from "../lib/series";
import { useTheme } from "../lib/theme";
import { useI18n } from "../lib/i18n";

export const PALETTE = [
  "#3b82f6",
  "#10b981",
  "#f59e0b",
  "#ef4444",
  "#8b5cf6",
  "#06b6d4",
  "#ec4899",
  "#84cc16",
  "#f97316",
  "#6366f1",
  "#14b8a6",
  "#eab308",
];

export interface ChartProps {
  columns: Columns;
  labels: string[];
  unit: Unit;
  height?: number;
  /** Fixed y-axis range, e.g. [0, 100] for percentages. */
  yRange?: [number, number];
  fill?: boolean;
  onZoom?: (from: number, to: number) => void;
  /** An accessible description of the chart. */
  title: string;
  legend?: boolean;
  colors?: string[];
  /** Draw bars (counts per bucket) instead of lines. */
  bars?: boolean;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function Chart({ columns, labels, unit, height = 220, yRange, fill, onZoom, title, legend = true, colors, bars }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useTheme();
  const { locale } = useI18n();
  const zoom = useRef(onZoom);
  useEffect(() => {
    zoom.current = onZoom;
  });
  const shape = labels.join("\u0000") + "|" + (colors ?? []).join(",");

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const axis = cssVar("--muted");
    const grid = cssVar("--grid");
    const palette = colors ?? PALETTE;
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 200),
      height,
      legend: { show: legend, live: true },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: true },
        y: yRange ? { range: () => yRange } : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          // Wide enough for the longest tick label ("931 MiB/s"), at ~7 px a character.
          size: (_u, values) => (values ? Math.max(40, ...values.map((v) => v.length * 7 + 18)) : 50),
          values: (_u, splits) => splits.map((v) => formatValue(v, unit)),
        },
      ],
      series: [
        { value: (_u, v) => (v === null ? "–" : new Date(v * 1000).toLocaleTimeString(locale)) },
        ...labels.map((label, i) => {
          const color = palette[i % palette.length] ?? "#3b82f6";
          return {
            label,
            stroke: color,
            width: bars ? 0 : 1.5,
            fill: bars ? color + "cc" : fill ? color + "22" : undefined,
            paths: bars ? uPlot.paths.bars?.({ size: [0.8 / Math.max(1, labels.length), 64], align: 1 }) : undefined,
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => formatValue(v, unit),
          };
        }),
      ],
      hooks: {
        // Without a cursor on the chart, the legend shows the newest values.
        setCursor: [
          (u) => {
            if (u.cursor.idx === null || u.cursor.idx === undefined) showLatest(u);
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoom.current?.(from, to);
          },
        ],
      },
    };
    const instance = new uPlot(options, columns as uPlot.AlignedData, element);
    showLatest(instance);
    plot.current = instance;
    const observer = new ResizeObserver(() => {
      instance.setSize({ width: Math.max(element.clientWidth, 200), height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      instance.destroy();
      plot.current = null;
    };
    // Re-created only when the series, theme, unit or size change; new data goes through setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, theme, unit, height, locale, fill, legend, bars, yRange?.[0], yRange?.[1]]);

  useEffect(() => {
    const instance = plot.current;
    if (!instance) return;
    instance.setData(columns as uPlot.AlignedData);
    if (instance.cursor.idx === null || instance.cursor.idx === undefined) showLatest(instance);
  }, [columns]);

  return <div className="chart" ref={box} role="img" aria-label={title} />;
}

/** Points the legend at the newest time with any value. */
function showLatest(u: uPlot): void {
  const times = u.data[0];
  for (let i = times.length - 1; i >= 0; i--) {
    if (u.data.slice(1).some((column) => column[i] !== null && column[i] !== undefined)) {
      u.setLegend({ idx: i }, false);
      return;
    }
  }
}
