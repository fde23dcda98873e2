import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Chart } from "../components/Chart";
import { RangePicker, zoomTo } from "../components/RangePicker";
import { Badge, Empty, ErrorBox, Loading, Panel, useLoad, type Tone } from "../components/ui";
import { api } from "../lib/api";
import { formatNumber, formatTime, formatValue } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { addFilter, fieldFilter, highlight, lineFields, LEVELS, type Level, type LogHit, type LogStats, type SearchPage } from "../lib/logs";
import { setParams, useLocation } from "../lib/router";
import type { Columns } from "../lib/series";
import { useTimeRange } from "../lib/timerange";

const LEVEL_TONE: Record<Level, Tone> = { critical: "bad", error: "bad", warning: "warn", info: "info", debug: "muted" };
const LEVEL_COLOR: Record<Level, string> = {
  critical: "#b91c1c",
  error: "#ef4444",
  warning: "#f59e0b",
  info: "#3b82f6",
  debug: "#94a3b8",
};
/** Lines kept in memory while tailing. */
const TAIL_LIMIT = 500;

function searchParams(query: string, levels: string, extra: Record<string, string> = {}): URLSearchParams {
  const qs = new URLSearchParams(extra);
  if (query) qs.set("q", query);
  if (levels) qs.set("level", levels);
  return qs;
}

export function LogsPage() {
  const { t } = useI18n();
  const { params } = useLocation();
  const query = params.get("q") ?? "";
  const levels = params.get("level") ?? "";
  const live = params.get("live") === "1";
  const range = useTimeRange("1h");
  const [draft, setDraft] = useState(query);
  useEffect(() => setDraft(query), [query]);
  const selected = new Set(levels.split(",").filter(Boolean));

  const toggleLevel = (level: Level) => {
    const next = new Set(selected);
    if (next.has(level)) next.delete(level);
    else next.add(level);
    setParams({ level: LEVELS.filter((l) => next.has(l)).join(",") || undefined });
  };
  const addToQuery = (filter: string) => setParams({ q: addFilter(query, filter) });

  return (
    <div className="page" data-testid="page-logs">
      <form
        className="query-form"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ q: draft.trim() || undefined });
        }}
      >
        <label htmlFor="log-query" className="field-label">
          {t("logs_search")}
        </label>
        <div className="query-row">
          <input
            id="log-query"
            className="mono grow"
            value={draft}
            placeholder={t("logs_placeholder")}
            spellCheck={false}
            onChange={(e) => setDraft(e.target.value)}
          />
          <button type="submit" className="btn btn-primary">
            {t("logs_search_button")}
          </button>
        </div>
        <p className="muted small">{t("logs_syntax")}</p>
      </form>
      <div className="toolbar">
        {!live ? <RangePicker range={range} /> : null}
        <div className="segmented" role="group" aria-label={t("logs_levels")}>
          {LEVELS.map((level) => (
            <button
              key={level}
              type="button"
              aria-pressed={selected.has(level)}
              className={selected.has(level) ? "active" : ""}
              onClick={() => toggleLevel(level)}
            >
              {t(("level_" + level) as "level_error")}
            </button>
          ))}
        </div>
        <label className="switch">
          <input
            type="checkbox"
            checked={live}
            onChange={(e) => setParams({ live: e.target.checked ? "1" : undefined })}
            data-testid="live-tail-toggle"
          />
          <span>{t("logs_live_tail")}</span>
        </label>
      </div>
      {live ? null : <LogStatsPanels query={query} levels={levels} from={range.from} to={range.to} tick={range.to} />}
      {live ? (
        <LiveTail query={query} levels={levels} onFilter={addToQuery} />
      ) : (
        <LogResults query={query} levels={levels} from={range.from} to={range.to} onFilter={addToQuery} />
      )}
    </div>
  );
}

function LogStatsPanels({ query, levels, from, to }: { query: string; levels: string; from: number; to: number; tick: number }) {
  const { t } = useI18n();
  const stats = useLoad(
    (signal) => {
      const qs = searchParams(query, levels, { from: String(Math.round(from * 1000)), to: String(Math.round(to * 1000)) });
      return api.get<LogStats>(`/api/v1/logs/stats?${qs}`, signal);
    },
    // Relative ranges move on every live tick; ten-second resolution keeps the reloads calm.
    [query, levels, Math.floor(from / 10), Math.floor(to / 10)],
  );
  const data = stats.data;
  const trend = useMemo(() => {
    if (!data) return undefined;
    const present = LEVELS.filter((l) => (data.levels[l] ?? 0) > 0);
    const columns: Columns = [
      data.buckets.map((b) => b.start / 1000),
      ...present.map((l) => data.buckets.map((b) => b.levels[l] ?? 0)),
    ];
    return { columns, levels: present };
  }, [data]);
  const errorRate = useMemo(() => {
    if (!data) return undefined;
    const columns: Columns = [data.buckets.map((b) => b.start / 1000), data.buckets.map((b) => (b.total ? b.error_rate : null))];
    return columns;
  }, [data]);
  if (stats.error) return <ErrorBox message={stats.error} onRetry={stats.reload} />;
  if (!data || !trend || !errorRate) return <Loading />;
  const total = data.total;
  return (
    <div className="grid grid-logs-stats">
      <Panel title={t("logs_distribution")}>
        <p className="big-number" data-testid="logs-total">
          {formatNumber(total)} <span className="muted small">{t("logs_lines")}</span>
        </p>
        <div className="level-bar" aria-hidden="true">
          {LEVELS.map((l) =>
            data.levels[l] ? <span key={l} className={"seg level-" + l} style={{ flexGrow: data.levels[l] }} /> : null,
          )}
        </div>
        <ul className="level-list" data-testid="level-distribution">
          {LEVELS.map((l) => (
            <li key={l}>
              <Badge tone={LEVEL_TONE[l]}>{t(("level_" + l) as "level_error")}</Badge>
              <span className="num">{formatNumber(data.levels[l] ?? 0)}</span>
              <span className="muted small">{total ? formatValue((data.levels[l] ?? 0) / total, "ratio") : "–"}</span>
            </li>
          ))}
        </ul>
      </Panel>
      <Panel title={t("logs_trend")}>
        {trend.levels.length === 0 ? (
          <Empty title={t("logs_none")} hint={t("logs_none_hint")} />
        ) : (
          <Chart
            columns={trend.columns}
            labels={trend.levels.map((l) => t(("level_" + l) as "level_error"))}
            colors={trend.levels.map((l) => LEVEL_COLOR[l])}
            unit="number"
            height={180}
            title={t("logs_trend")}
            onZoom={zoomTo}
            bars
          />
        )}
      </Panel>
      <Panel title={t("logs_error_rate")}>
        <Chart columns={errorRate} labels={[t("logs_error_rate")]} colors={["#ef4444"]} unit="ratio" height={180} title={t("logs_error_rate")} onZoom={zoomTo} fill />
      </Panel>
      <Panel title={t("logs_top_messages")} className="span-all">
        {data.top_messages.length === 0 ? (
          <Empty title={t("logs_none")} />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">{t("logs_level")}</th>
                  <th scope="col">{t("logs_message")}</th>
                  <th scope="col" className="num">
                    {t("logs_count")}
                  </th>
                </tr>
              </thead>
              <tbody>
                {data.top_messages.map((m) => (
                  <tr key={m.template}>
                    <td>
                      <Badge tone={LEVEL_TONE[m.level]}>{t(("level_" + m.level) as "level_error")}</Badge>
                    </td>
                    <td className="mono">{m.template}</td>
                    <td className="num">{formatNumber(m.count)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Panel>
    </div>
  );
}

function LogResults({
  query,
  levels,
  from,
  to,
  onFilter,
}: {
  query: string;
  levels: string;
  from: number;
  to: number;
  onFilter: (filter: string) => void;
}) {
  const { t } = useI18n();
  const [hits, setHits] = useState<LogHit[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<{ loading: boolean; error?: string; took?: number }>({ loading: true });
  const sentinel = useRef<HTMLDivElement>(null);
  // A fixed end for this result set, so paging and the live range do not fight.
  const fromMs = Math.round(from * 1000);
  const toMs = Math.round(to * 1000);
  const key = `${query}\u0000${levels}\u0000${Math.floor(from / 60)}`;
  const base = useRef({ fromMs, toMs });
  base.current = { fromMs, toMs };

  const load = useCallback(
    async (after: string | null, signal?: AbortSignal) => {
      const { fromMs: f, toMs: e } = base.current;
      const qs = searchParams(query, levels, { from: String(f), to: String(e), limit: "100" });
      if (after) qs.set("cursor", after);
      return api.get<SearchPage>(`/api/v1/logs/search?${qs}`, signal);
    },
    [query, levels],
  );

  useEffect(() => {
    const controller = new AbortController();
    setState({ loading: true });
    load(null, controller.signal)
      .then((page) => {
        setHits(page.hits);
        setCursor(page.next_cursor);
        setState({ loading: false, took: page.took_ms });
      })
      .catch((e: unknown) => {
        if (!controller.signal.aborted) setState({ loading: false, error: e instanceof Error ? e.message : String(e) });
      });
    return () => controller.abort();
  }, [key, load]);

  const more = useCallback(async () => {
    if (!cursor || state.loading) return;
    setState((s) => ({ ...s, loading: true }));
    try {
      const page = await load(cursor);
      setHits((h) => [...h, ...page.hits]);
      setCursor(page.next_cursor);
      setState({ loading: false, took: page.took_ms });
    } catch (e) {
      setState({ loading: false, error: e instanceof Error ? e.message : String(e) });
    }
  }, [cursor, state.loading, load]);

  useEffect(() => {
    const element = sentinel.current;
    if (!element || !cursor) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void more();
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [cursor, more]);

  return (
    <Panel
      title={t("logs_results")}
      actions={state.took !== undefined ? <span className="muted small">{t(hits.length === 1 ? "logs_took_one" : "logs_took", { n: hits.length, ms: state.took })}</span> : null}
    >
      {state.error ? <ErrorBox message={state.error} /> : null}
      {hits.length === 0 && !state.loading && !state.error ? <Empty title={t("logs_none")} hint={t("logs_none_hint")} /> : null}
      <LogList hits={hits} onFilter={onFilter} />
      {state.loading ? <Loading /> : null}
      {cursor ? (
        <div ref={sentinel} className="sentinel">
          <button type="button" className="btn btn-small" onClick={() => void more()}>
            {t("logs_more")}
          </button>
        </div>
      ) : null}
    </Panel>
  );
}

function LiveTail({ query, levels, onFilter }: { query: string; levels: string; onFilter: (filter: string) => void }) {
  const { t } = useI18n();
  const [hits, setHits] = useState<LogHit[]>([]);
  const [status, setStatus] = useState<"connecting" | "live" | "reconnecting">("connecting");
  useEffect(() => {
    setHits([]);
    setStatus("connecting");
    const source = new EventSource(`/api/v1/logs/tail?${searchParams(query, levels)}`);
    source.addEventListener("open", () => setStatus("live"));
    source.addEventListener("error", () => setStatus("reconnecting"));
    source.addEventListener("log", (event) => {
      try {
        const hit = JSON.parse((event as MessageEvent<string>).data) as LogHit;
        setHits((h) => [hit, ...h].slice(0, TAIL_LIMIT));
      } catch {
        // skip a malformed event
      }
    });
    return () => source.close();
  }, [query, levels]);
  return (
    <Panel
      title={t("logs_live_tail")}
      actions={
        <span className={"live-pill " + status} data-testid="tail-status">
          <span className="dot" aria-hidden="true" />
          {status === "live" ? t("live") : status === "reconnecting" ? t("live_reconnecting") : t("live_connecting")}
        </span>
      }
    >
      {hits.length === 0 ? <Empty title={t("logs_tail_waiting")} /> : null}
      <LogList hits={hits} onFilter={onFilter} />
    </Panel>
  );
}

function LogList({ hits, onFilter }: { hits: LogHit[]; onFilter: (filter: string) => void }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const toggle = (id: number) =>
    setOpen((o) => {
      const next = new Set(o);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  return (
    <ol className="log-list" data-testid="log-list">
      {hits.map((hit) => (
        <LogLine key={hit.id} hit={hit} open={open.has(hit.id)} onToggle={() => toggle(hit.id)} onFilter={onFilter} />
      ))}
    </ol>
  );
}

function LogLine({ hit, open, onToggle, onFilter }: { hit: LogHit; open: boolean; onToggle: () => void; onFilter: (filter: string) => void }) {
  const { t, locale } = useI18n();
  return (
    <li className={"log-line level-" + hit.level + (open ? " open" : "")} data-testid="log-line">
      <button type="button" className="log-summary" aria-expanded={open} onClick={onToggle}>
        <time className="log-time mono" dateTime={hit.timestamp}>
          {formatTime(hit.timestamp, locale)}
        </time>
        <span className={"log-level level-" + hit.level}>{t(("level_" + hit.level) as "level_error")}</span>
        {hit.service ? <span className="log-service">{hit.service}</span> : null}
        <span className="log-message mono">
          {highlight(hit.message, hit.highlights).map((s, i) => (s.hit ? <mark key={i}>{s.text}</mark> : <span key={i}>{s.text}</span>))}
        </span>
      </button>
      {open ? (
        <div className="log-fields">
          <table className="table compact">
            <tbody>
              {lineFields(hit).map(([field, value]) => (
                <tr key={field}>
                  <th scope="row" className="mono">
                    {field}
                  </th>
                  <td className="mono">
                    <button
                      type="button"
                      className="link-button"
                      title={t("logs_filter_by")}
                      onClick={() => onFilter(fieldFilter(field, value))}
                    >
                      {typeof value === "string" ? value : JSON.stringify(value)}
                    </button>
                  </td>
                </tr>
              ))}
              <tr>
                <th scope="row" className="mono">
                  timestamp
                </th>
                <td className="mono">{hit.timestamp}</td>
              </tr>
            </tbody>
          </table>
        </div>
      ) : null}
    </li>
  );
}
