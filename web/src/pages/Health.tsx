import { useState } from "react";
import { ChartPanel } from "../components/ChartPanel";
import { RangePicker } from "../components/RangePicker";
import { Badge, Empty, ErrorBox, Loading, Panel, useLoad, type Tone } from "../components/ui";
import { api, ApiError } from "../lib/api";
import { formatAgo, formatSeconds, formatTime, formatValue } from "../lib/format";
import { useI18n, type Key } from "../lib/i18n";
import { useLive, useLiveEvents } from "../lib/live";
import { setParams, useLocation } from "../lib/router";
import { canEdit, useSession } from "../lib/session";
import { useTimeRange } from "../lib/timerange";

export type Status = "healthy" | "degraded" | "unhealthy" | "unknown";

interface Component {
  id: number;
  name: string;
  kind: string;
  critical: boolean;
  status: Status;
  latency_ms: number | null;
  message: string | null;
  last_checked: string | null;
  last_change: string | null;
  details: Record<string, unknown>;
}

interface HealthReport {
  status: Status;
  generated_at: string;
  counts: Record<Status, number>;
  components: Component[];
}

interface History {
  id: number;
  name: string;
  kind: string;
  status: Status;
  uptime: { "24h": number | null; "7d": number | null; "30d": number | null };
  daily_uptime: (number | null)[];
  changes: { at: string; from: Status; to: Status; message: string; duration_seconds: number; ongoing: boolean }[];
}

export const STATUS_TONE: Record<Status, Tone> = { healthy: "ok", degraded: "warn", unhealthy: "bad", unknown: "muted" };
const STATUS_KEY: Record<Status, Key> = {
  healthy: "hc_healthy",
  degraded: "hc_degraded",
  unhealthy: "hc_unhealthy",
  unknown: "hc_unknown",
};

/** Tone of an uptime bar: green at 99.9 % and above, amber from 99 %, red below. */
export function uptimeTone(percent: number | null): Tone {
  if (percent === null) return "muted";
  return percent >= 99.9 ? "ok" : percent >= 99 ? "warn" : "bad";
}

function StatusBadge({ status }: { status: Status }) {
  const { t } = useI18n();
  return <Badge tone={STATUS_TONE[status]}>{t(STATUS_KEY[status])}</Badge>;
}

export function HealthPage() {
  const { t, locale } = useI18n();
  const { tick } = useLive();
  const { params } = useLocation();
  const { me } = useSession();
  const selected = Number(params.get("check")) || undefined;
  const report = useLoad((signal) => api.get<HealthReport>("/api/v1/monitoring/health", signal), [Math.floor(tick / 2)]);
  useLiveEvents((type) => {
    if (type === "health") report.reload();
  });
  const [runs, setRuns] = useState<Record<number, string>>({});
  const run = async (component: Component) => {
    setRuns((r) => ({ ...r, [component.id]: t("hc_running") }));
    try {
      const result = await api.post<{ result: { status: Status; latency_ms: number | null; message: string } }>(
        `/api/v1/checks/${component.id}/run`,
      );
      const latency = result.result.latency_ms === null ? "" : ` · ${formatValue(result.result.latency_ms / 1000, "seconds")}`;
      setRuns((r) => ({ ...r, [component.id]: `${t(STATUS_KEY[result.result.status])}${latency} · ${result.result.message}` }));
      report.reload();
    } catch (e) {
      setRuns((r) => ({ ...r, [component.id]: e instanceof ApiError || e instanceof Error ? e.message : String(e) }));
    }
  };
  if (report.error) return <ErrorBox message={report.error} onRetry={report.reload} />;
  if (!report.data) return <Loading />;
  const data = report.data;
  return (
    <div className="page" data-testid="page-health">
      <section className={"hero-card tone-" + STATUS_TONE[data.status]} aria-label={t("ov_health")}>
        <span className="hero-dot" aria-hidden="true" />
        <div>
          <h2 className="hero-label">{t("ov_health")}</h2>
          <p className="hero-value" data-testid="overall-status">
            {t(STATUS_KEY[data.status])}
          </p>
          <div className="severity-row">
            {(["healthy", "degraded", "unhealthy", "unknown"] as Status[]).map((s) => (
              <Badge key={s} tone={data.counts[s] ? STATUS_TONE[s] : "muted"}>
                {t(STATUS_KEY[s])} <b>{data.counts[s] ?? 0}</b>
              </Badge>
            ))}
          </div>
        </div>
      </section>
      <Panel title={t("hc_components")}>
        {data.components.length === 0 ? (
          <Empty title={t("hc_none")} hint={t("hc_none_hint")} />
        ) : (
          <ul className="components" data-testid="components">
            {data.components.map((c) => (
              <li key={c.id} className={"component tone-" + STATUS_TONE[c.status] + (selected === c.id ? " selected" : "")}>
                <div className="component-head">
                  <span className="status-dot" aria-hidden="true" />
                  <button type="button" className="link-button component-name" onClick={() => setParams({ check: String(c.id) })}>
                    {c.name}
                  </button>
                  <Badge tone="muted">{c.kind}</Badge>
                  {c.critical ? <Badge tone="info">{t("hc_critical")}</Badge> : null}
                  <StatusBadge status={c.status} />
                  <span className="component-meta muted small">
                    {c.latency_ms !== null ? formatValue(c.latency_ms / 1000, "seconds") : "–"}
                    {c.last_change ? ` · ${t("hc_since", { ago: formatAgo(c.last_change, locale) })}` : ""}
                  </span>
                  {canEdit(me.role) ? (
                    <button type="button" className="btn btn-small" onClick={() => void run(c)}>
                      {t("hc_run_now")}
                    </button>
                  ) : null}
                </div>
                {c.message ? <p className="component-message small">{c.message}</p> : null}
                {runs[c.id] ? (
                  <p className="small" role="status" data-testid="run-result">
                    {runs[c.id]}
                  </p>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </Panel>
      {selected ? <CheckDetail id={selected} /> : null}
    </div>
  );
}

function CheckDetail({ id }: { id: number }) {
  const { t, locale } = useI18n();
  const range = useTimeRange("24h");
  const history = useLoad((signal) => api.get<History>(`/api/v1/checks/${id}/history?limit=100`, signal), [id]);
  if (history.error) return <ErrorBox message={history.error} onRetry={history.reload} />;
  if (!history.data) return <Loading />;
  const h = history.data;
  const name = h.name.replace(/["\\]/g, "\\$&");
  return (
    <div className="stack" data-testid="check-detail">
      <h2 className="section-title">{h.name}</h2>
      <div className="grid grid-cards">
        {(["24h", "7d", "30d"] as const).map((w) => (
          <div key={w} className={"stat tone-" + uptimeTone(h.uptime[w])}>
            <div className="stat-label">{t("hc_uptime", { window: w })}</div>
            <div className="stat-value">{h.uptime[w] === null ? "–" : `${h.uptime[w]?.toFixed(2)}%`}</div>
          </div>
        ))}
      </div>
      <Panel title={t("hc_daily_uptime")}>
        <div className="uptime-bars" role="list" aria-label={t("hc_daily_uptime")} data-testid="uptime-bars">
          {h.daily_uptime.map((p, i) => {
            const day = new Date(Date.now() - (h.daily_uptime.length - 1 - i) * 86_400_000);
            const label = `${day.toLocaleDateString(locale)}: ${p === null ? t("hc_not_checked") : p.toFixed(2) + "%"}`;
            return <span key={i} role="listitem" className={"bar tone-" + uptimeTone(p)} title={label} aria-label={label} />;
          })}
        </div>
        <div className="uptime-legend muted small">
          <span>{t("hc_days_ago", { n: h.daily_uptime.length })}</span>
          <span>{t("hc_today")}</span>
        </div>
      </Panel>
      <div className="toolbar">
        <RangePicker range={range} />
      </div>
      <ChartPanel
        title={t("hc_latency")}
        queries={[`hubmon_check_latency_seconds{check="${name}"}`]}
        range={range}
        unit="seconds"
        fill
        label={() => t("hc_latency")}
        testId="chart-check-latency"
      />
      <Panel title={t("hc_changes")}>
        {h.changes.length === 0 ? (
          <Empty title={t("hc_no_changes")} />
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">{t("au_time")}</th>
                  <th scope="col">{t("hc_change")}</th>
                  <th scope="col">{t("hc_duration")}</th>
                  <th scope="col">{t("logs_message")}</th>
                </tr>
              </thead>
              <tbody>
                {h.changes.map((c, i) => (
                  <tr key={i}>
                    <td className="nowrap">{formatTime(c.at, locale)}</td>
                    <td className="nowrap">
                      <StatusBadge status={c.from} /> → <StatusBadge status={c.to} />
                    </td>
                    <td className="nowrap">
                      {formatSeconds(c.duration_seconds)}
                      {c.ongoing ? ` (${t("hc_ongoing")})` : ""}
                    </td>
                    <td>{c.message}</td>
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
