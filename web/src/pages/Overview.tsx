import type { ReactNode } from "react";
import { Sparkline } from "../components/Sparkline";
import { Badge, Empty, Link, Loading, Stat, type Tone } from "../components/ui";
import type { Section, Summary } from "../lib/api";
import { formatValue } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { useLive } from "../lib/live";
import { API, Q } from "../lib/queries";
import { useRangeQueries, useTimeRange } from "../lib/timerange";

function available<T>(section: Section<T>): (T & { state: "available" }) | undefined {
  return section.state === "available" ? (section as T & { state: "available" }) : undefined;
}

function toneFor(value: number | null | undefined, warn: number, bad: number): Tone {
  if (value === null || value === undefined) return "muted";
  return value >= bad ? "bad" : value >= warn ? "warn" : "ok";
}

export function OverviewPage() {
  const { t } = useI18n();
  const { summary } = useLive();
  if (!summary) return <Loading />;
  return (
    <div className="page overview" data-testid="page-overview">
      <div className="grid grid-hero">
        <HealthCard summary={summary} />
        <AlertsCard summary={summary} />
      </div>
      <h2 className="section-title">{t("ov_host_title")}</h2>
      <HostCards summary={summary} />
      <h2 className="section-title">{t("ov_api_title")}</h2>
      <ApiCards summary={summary} />
      <h2 className="section-title">{t("ov_modules_title")}</h2>
      <ModuleCards summary={summary} />
    </div>
  );
}

function Unavailable({ reason }: { reason: string }) {
  const { t } = useI18n();
  return (
    <span className="unavailable" title={reason}>
      {t("unavailable")}
    </span>
  );
}

function HealthCard({ summary }: { summary: Summary }) {
  const { t } = useI18n();
  const health = available(summary.health);
  let body: ReactNode;
  let tone: Tone = "muted";
  if (!health) {
    body = <p className="muted">{summary.health.state === "unavailable" ? summary.health.reason : ""}</p>;
  } else {
    const total = health.healthy + health.degraded + health.unhealthy + health.unknown;
    tone = { healthy: "ok", degraded: "warn", unhealthy: "bad", unknown: "muted" }[health.status] as Tone;
    const label = {
      healthy: t("ov_health_up"),
      degraded: t("ov_health_degraded"),
      unhealthy: t("ov_health_down"),
      unknown: t("ov_health_unknown"),
    }[health.status];
    body = (
      <>
        <p className="hero-value">{label}</p>
        {total > 0 ? (
          <p className="muted">
            {t("ov_components", { up: health.healthy + health.degraded, total })} · <Link href="/health">{t("nav_health")} →</Link>
          </p>
        ) : null}
      </>
    );
  }
  return (
    <section className={"hero-card tone-" + tone} data-testid="card-health" aria-label={t("ov_health")}>
      <span className="hero-dot" aria-hidden="true" />
      <div>
        <h2 className="hero-label">{t("ov_health")}</h2>
        {body}
      </div>
    </section>
  );
}

function AlertsCard({ summary }: { summary: Summary }) {
  const { t } = useI18n();
  const alerts = available(summary.alerts);
  if (!alerts) {
    return (
      <section className="hero-card tone-muted" data-testid="card-alerts" aria-label={t("ov_alerts")}>
        <div>
          <h2 className="hero-label">{t("ov_alerts")}</h2>
          <p className="muted">{summary.alerts.state === "unavailable" ? summary.alerts.reason : ""}</p>
        </div>
      </section>
    );
  }
  const bad = alerts.critical + alerts.error;
  const total = bad + alerts.warning + alerts.info;
  return (
    <section
      className={"hero-card tone-" + (bad > 0 ? "bad" : alerts.warning > 0 ? "warn" : "ok")}
      data-testid="card-alerts"
      aria-label={t("ov_alerts")}
    >
      <span className="hero-dot" aria-hidden="true" />
      <div>
        <h2 className="hero-label">{t("ov_alerts")}</h2>
        <p className="hero-value">{total === 0 ? t("ov_alerts_none") : t("ov_alerts_firing", { n: total })}</p>
        <div className="severity-row">
          {(["critical", "error", "warning", "info"] as const).map((s) => (
            <Badge key={s} tone={alerts[s] > 0 ? (s === "warning" ? "warn" : s === "info" ? "info" : "bad") : "muted"}>
              {t(("sev_" + s) as "sev_critical")} <b>{alerts[s]}</b>
            </Badge>
          ))}
          {alerts.pending > 0 ? <Badge tone="muted">{t("ov_alerts_pending", { n: alerts.pending })}</Badge> : null}
          <Link href="/alerts">{t("nav_alerts")} →</Link>
        </div>
      </div>
    </section>
  );
}

function useSparklines(queries: string[]) {
  const range = useTimeRange("15m");
  const fixed = { ...range, preset: "15m", from: range.to - 900 };
  return useRangeQueries(queries, fixed, 90);
}

function spark(result: ReturnType<typeof useSparklines>, index: number) {
  if (!result.columns || (result.counts[index] ?? 0) === 0) return undefined;
  const offset = result.counts.slice(0, index).reduce((a, b) => a + b, 0);
  const column = result.columns[1 + offset];
  if (!column) return undefined;
  // Start at the first value: a server up for a minute gets a minute-wide sparkline, not a dot.
  const first = column.findIndex((v) => v !== null);
  if (first < 0) return undefined;
  return [result.columns[0].slice(first), column.slice(first)] as [number[], (number | null)[]];
}

function HostCards({ summary }: { summary: Summary }) {
  const { t } = useI18n();
  const host = available(summary.host);
  const sparks = useSparklines([Q.cpuPercent, Q.memoryPercent, Q.diskPercentMax, `max(${Q.load1})`]);
  if (!host) {
    return <Empty title={t("unavailable")} hint={summary.host.state === "unavailable" ? summary.host.reason : ""} />;
  }
  const load = spark(sparks, 3);
  const cards: { key: string; label: string; value: number | null; sub?: string; color: string; index?: number; testId: string }[] = [
    {
      key: "cpu",
      label: t("ov_cpu"),
      value: host.cpu_percent,
      sub: host.cpu_cores ? t("ov_cores", { n: host.cpu_cores }) : undefined,
      color: "#3b82f6",
      index: 0,
      testId: "card-cpu",
    },
    { key: "mem", label: t("ov_memory"), value: host.memory_percent, color: "#8b5cf6", index: 1, testId: "card-memory" },
    { key: "disk", label: t("ov_disk"), value: host.disk_percent, color: "#f59e0b", index: 2, testId: "card-disk" },
  ];
  return (
    <div className="grid grid-cards">
      {cards.map((card) => {
        const data = card.index === undefined ? undefined : spark(sparks, card.index);
        return (
          <Stat
            key={card.key}
            label={card.label}
            value={formatValue(card.value, "percent")}
            sub={card.sub ?? t("ov_last_15m")}
            tone={toneFor(card.value, 75, 90)}
            testId={card.testId}
          >
            {data ? <Sparkline columns={data} color={card.color} label={card.label + " " + t("ov_last_15m")} /> : null}
          </Stat>
        );
      })}
      <Stat label={t("ov_load")} value={formatValue(host.load1, "number")} testId="card-load" tone="info">
        {load ? <Sparkline columns={load} color="#06b6d4" label={t("ov_load")} /> : null}
      </Stat>
    </div>
  );
}

function ApiCards({ summary }: { summary: Summary }) {
  const { t } = useI18n();
  const apiStats = available(summary.api);
  const sparks = useSparklines([API.rps(), API.errorRatio(), API.quantile(0.95), API.activeKeys()]);
  if (!apiStats) {
    return <Empty title={t("unavailable")} hint={summary.api.state === "unavailable" ? summary.api.reason : ""} />;
  }
  const rps = spark(sparks, 0);
  const err = spark(sparks, 1);
  const p95 = spark(sparks, 2);
  const keys = spark(sparks, 3);
  return (
    <div className="grid grid-cards">
      <Stat label={t("ov_requests")} value={formatValue(apiStats.requests_per_second, "per_second")} tone="info" testId="card-rps">
        {rps ? <Sparkline columns={rps} color="#06b6d4" label={t("ov_requests")} /> : null}
      </Stat>
      <Stat
        label={t("ov_error_rate")}
        value={formatValue(apiStats.error_rate, "ratio")}
        tone={toneFor(apiStats.error_rate, 0.01, 0.05)}
        testId="card-errors"
      >
        {err ? <Sparkline columns={err} color="#ef4444" label={t("ov_error_rate")} /> : null}
      </Stat>
      <Stat label={t("ov_p95")} value={formatValue(apiStats.p95_seconds, "seconds")} tone={toneFor(apiStats.p95_seconds, 0.5, 2)} testId="card-p95">
        {p95 ? <Sparkline columns={p95} color="#10b981" label={t("ov_p95")} /> : null}
      </Stat>
      <Stat label={t("ov_active_keys")} value={formatValue(apiStats.active_keys, "number")} tone="info" testId="card-keys">
        {keys ? <Sparkline columns={keys} color="#8b5cf6" label={t("ov_active_keys")} /> : null}
      </Stat>
    </div>
  );
}

function ModuleCards({ summary }: { summary: Summary }) {
  const { t } = useI18n();
  const logs = available(summary.logs);
  const notifications = available(summary.notifications);
  return (
    <div className="grid grid-cards">
      <Stat
        label={t("ov_log_errors")}
        value={logs ? formatValue(logs.errors_5m, "number") : <Unavailable reason={summary.logs.state === "unavailable" ? summary.logs.reason : ""} />}
        sub={summary.logs.state === "unavailable" ? summary.logs.reason : undefined}
        tone={logs ? toneFor(logs.errors_5m, 1, 50) : "muted"}
        testId="card-log-errors"
      >
        {logs ? <Link href="/logs?level=critical,error&range=15m">{t("nav_logs")} →</Link> : null}
      </Stat>
      <Stat
        label={t("ov_failed_notifications")}
        value={
          notifications ? (
            formatValue(notifications.failed_24h, "number")
          ) : (
            <Unavailable reason={summary.notifications.state === "unavailable" ? summary.notifications.reason : ""} />
          )
        }
        sub={summary.notifications.state === "unavailable" ? summary.notifications.reason : undefined}
        tone={notifications ? toneFor(notifications.failed_24h, 1, 10) : "muted"}
        testId="card-failed-notifications"
      />
    </div>
  );
}
