import { useEffect, useState } from "react";
import { ChartPanel } from "../components/ChartPanel";
import { RangePicker } from "../components/RangePicker";
import { Empty, ErrorBox, Loading, Panel, Tabs, useLoad } from "../components/ui";
import { api, queryInstant, type InstantResult } from "../lib/api";
import { formatLabels, unitFor } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { setParams, useLocation } from "../lib/router";
import { useTimeRange } from "../lib/timerange";

type View = "graph" | "table";

export function ExplorePage() {
  const { t } = useI18n();
  const { params } = useLocation();
  const query = params.get("q") ?? "";
  const view: View = params.get("view") === "table" ? "table" : "graph";
  const range = useTimeRange("1h");
  const [draft, setDraft] = useState(query);
  useEffect(() => setDraft(query), [query]);
  const names = useLoad(
    (signal) => api.get<{ data: string[] }>("/api/v1/label/__name__/values", signal).then((r) => r.data),
    [],
  );

  const run = (event?: React.FormEvent) => {
    event?.preventDefault();
    setParams({ q: draft.trim() || undefined });
  };

  return (
    <div className="page" data-testid="page-explore">
      <form className="query-form" onSubmit={run}>
        <label htmlFor="promql" className="field-label">
          {t("ex_query")}
        </label>
        <div className="query-row">
          <textarea
            id="promql"
            className="mono"
            rows={2}
            value={draft}
            placeholder={t("ex_placeholder")}
            spellCheck={false}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                run();
              }
            }}
          />
          <button type="submit" className="btn btn-primary">
            {t("ex_run")}
          </button>
        </div>
        <details className="metric-list">
          <summary>
            {t("ex_metrics")} ({names.data?.length ?? 0})
          </summary>
          <div className="chips">
            {(names.data ?? []).map((name) => (
              <button key={name} type="button" className="chip" onClick={() => setDraft(name)}>
                {name}
              </button>
            ))}
          </div>
        </details>
      </form>
      <div className="toolbar">
        <Tabs<View>
          label={t("ex_view")}
          value={view}
          options={[
            { value: "graph", label: t("ex_graph") },
            { value: "table", label: t("ex_table") },
          ]}
          onChange={(v) => setParams({ view: v === "graph" ? undefined : v })}
        />
        {view === "graph" ? <RangePicker range={range} /> : null}
      </div>
      {!query ? (
        <Empty title={t("ex_empty")} />
      ) : view === "graph" ? (
        <ChartPanel
          title={query}
          queries={[query]}
          range={range}
          unit={unitFor(query)}
          height={360}
          label={(m) => formatLabels(m)}
          testId="explore-graph"
        />
      ) : (
        <ExploreTable query={query} />
      )}
    </div>
  );
}

function ExploreTable({ query }: { query: string }) {
  const { t } = useI18n();
  const result = useLoad((signal) => queryInstant(query, undefined, signal), [query]);
  return (
    <Panel title={t("ex_table")}>
      {result.error ? (
        <ErrorBox message={result.error} onRetry={result.reload} />
      ) : !result.data ? (
        <Loading />
      ) : (
        <ResultTable result={result.data} />
      )}
    </Panel>
  );
}

function ResultTable({ result }: { result: InstantResult }) {
  const { t } = useI18n();
  let rows: { key: string; series: string; value: string }[];
  if (result.resultType === "vector") {
    rows = result.result.map((s, i) => ({ key: String(i), series: formatLabels(s.metric), value: s.value[1] }));
  } else if (result.resultType === "matrix") {
    rows = result.result.map((s, i) => ({
      key: String(i),
      series: formatLabels(s.metric),
      value: s.values.map(([ts, v]) => `${v} @${ts}`).join("\n"),
    }));
  } else {
    rows = [{ key: "0", series: result.resultType, value: result.result[1] }];
  }
  if (rows.length === 0) return <Empty title={t("ex_no_result")} />;
  return (
    <div className="table-wrap" tabIndex={0}>
      <table className="table" data-testid="explore-table">
        <thead>
          <tr>
            <th scope="col">{t("ex_series")}</th>
            <th scope="col" className="num">
              {t("ex_value")}
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.key}>
              <td className="mono">{row.series}</td>
              <td className="num mono pre">{row.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
