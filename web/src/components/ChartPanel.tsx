// A panel that runs PromQL over the page's time range and draws the result.
import type { ReactNode } from "react";
import { Chart } from "./Chart";
import { zoomTo } from "./RangePicker";
import { Empty, ErrorBox, Loading, Panel } from "./ui";
import type { Unit } from "../lib/format";
import type { Columns } from "../lib/series";
import { useI18n } from "../lib/i18n";
import { useRangeQueries, type TimeRange } from "../lib/timerange";

export interface ChartPanelProps {
  title: string;
  queries: string[];
  range: TimeRange;
  unit: Unit;
  /** Names a series from its labels and the index of the query that produced it. */
  label: (metric: Record<string, string>, query: number) => string;
  yRange?: [number, number];
  fill?: boolean;
  height?: number;
  className?: string;
  actions?: ReactNode;
  testId?: string;
}

export function ChartPanel({ title, queries, range, unit, label, yRange, fill, height, className, actions, testId }: ChartPanelProps) {
  const { t } = useI18n();
  const result = useRangeQueries(queries, range);
  const labels: string[] = [];
  result.counts.forEach((count, query) => {
    const start = result.counts.slice(0, query).reduce((a, b) => a + b, 0);
    for (let i = 0; i < count; i++) labels.push(label(result.metrics[start + i] ?? {}, query));
  });
  const last = lastValueTime(result.columns);
  let body: ReactNode;
  if (result.error) body = <ErrorBox message={result.error} />;
  else if (!result.columns) body = <Loading />;
  else if (labels.length === 0) body = <Empty title={t("no_data")} hint={t("no_data_hint")} />;
  else
    body = (
      <Chart
        columns={result.columns}
        labels={labels}
        unit={unit}
        yRange={yRange}
        fill={fill}
        height={height}
        title={title}
        onZoom={zoomTo}
      />
    );
  return (
    <div className={className} data-testid={testId} data-series={labels.length} data-last={last}>
      <Panel title={title} actions={actions}>
        {body}
      </Panel>
    </div>
  );
}

/** The newest time (seconds) at which any series has a value: what "live" means on a chart. */
export function lastValueTime(columns: Columns | undefined): number {
  if (!columns) return 0;
  const [times, ...values] = columns;
  for (let i = times.length - 1; i >= 0; i--) {
    if (values.some((column) => column[i] !== null && column[i] !== undefined)) return times[i] ?? 0;
  }
  return 0;
}
