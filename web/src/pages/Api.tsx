import { ChartPanel } from "../components/ChartPanel";
import { RangePicker } from "../components/RangePicker";
import { Empty, ErrorBox, Loading, Panel, useLoad } from "../components/ui";
import { queryInstant, type InstantResult } from "../lib/api";
import { formatValue } from "../lib/format";
import { useI18n } from "../lib/i18n";
import { API } from "../lib/queries";
import { setParams, useLocation } from "../lib/router";
import { useTimeRange } from "../lib/timerange";

function vector(result: InstantResult): { metric: Record<string, string>; value: number }[] {
  if (result.resultType !== "vector") return [];
  return result.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
}

export function ApiPage() {
  const { t } = useI18n();
  const range = useTimeRange("1h");
  const { params } = useLocation();
  const service = params.get("service") ?? undefined;
  const services = useLoad(async (signal) => {
    const result = await queryInstant(API.services, undefined, signal);
    return vector(result)
      .map((s) => s.metric.service ?? "")
      .filter(Boolean)
      .sort();
  }, []);

  return (
    <div className="page" data-testid="page-api">
      <div className="toolbar">
        <RangePicker range={range} />
        <label className="inline-field">
          <span>{t("api_service")}</span>
          <select value={service ?? ""} onChange={(e) => setParams({ service: e.target.value || undefined })}>
            <option value="">{t("api_all_services")}</option>
            {(services.data ?? []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="grid grid-charts">
        <ChartPanel
          title={t("api_traffic")}
          queries={service ? [API.rps(service)] : [API.rpsByService()]}
          range={range}
          unit="per_second"
          fill
          label={(m) => m.service ?? service ?? t("series_total")}
          testId="chart-rps"
        />
        <ChartPanel
          title={t("api_errors")}
          queries={[API.errorRatio(service)]}
          range={range}
          unit="ratio"
          label={() => t("api_err")}
          testId="chart-errors"
        />
        <ChartPanel
          title={t("api_latency")}
          queries={[API.quantile(0.5, service), API.quantile(0.95, service), API.quantile(0.99, service)]}
          range={range}
          unit="seconds"
          label={(_m, q) => ["p50", "p95", "p99"][q] ?? ""}
          testId="chart-latency"
        />
        <ChartPanel
          title={t("api_active_keys")}
          queries={[API.activeKeys(service)]}
          range={range}
          unit="number"
          label={() => t("api_active_keys")}
          testId="chart-keys"
        />
      </div>
      <RoutesTable service={service} at={range.to} />
    </div>
  );
}

interface RouteRow {
  key: string;
  service: string;
  route: string;
  method: string;
  rps: number;
  errors: number;
  p50: number | undefined;
  p95: number | undefined;
  p99: number | undefined;
}

function RoutesTable({ service, at }: { service: string | undefined; at: number }) {
  const { t } = useI18n();
  const rows = useLoad(
    async (signal) => {
      const [rps, errors, p50, p95, p99] = await Promise.all([
        queryInstant(API.routeRps(service), at, signal),
        queryInstant(API.routeErrors(service), at, signal),
        queryInstant(API.routeQuantile(0.5, service), at, signal),
        queryInstant(API.routeQuantile(0.95, service), at, signal),
        queryInstant(API.routeQuantile(0.99, service), at, signal),
      ]);
      const key = (m: Record<string, string>) => `${m.service}\u0000${m.route}\u0000${m.method}`;
      const byKey = new Map<string, RouteRow>();
      for (const s of vector(rps)) {
        byKey.set(key(s.metric), {
          key: key(s.metric),
          service: s.metric.service ?? "",
          route: s.metric.route ?? "",
          method: s.metric.method ?? "",
          rps: s.value,
          errors: 0,
          p50: undefined,
          p95: undefined,
          p99: undefined,
        });
      }
      for (const s of vector(errors)) {
        const row = byKey.get(key(s.metric));
        if (row) row.errors = s.value;
      }
      for (const [list, field] of [
        [p50, "p50"],
        [p95, "p95"],
        [p99, "p99"],
      ] as const) {
        for (const s of vector(list)) {
          const row = byKey.get(key(s.metric));
          if (row && Number.isFinite(s.value)) row[field] = s.value;
        }
      }
      return [...byKey.values()].sort((a, b) => b.rps - a.rps);
    },
    [service, Math.floor(at / 10)],
  );
  return (
    <Panel title={t("api_routes")}>
      {rows.error ? (
        <ErrorBox message={rows.error} onRetry={rows.reload} />
      ) : !rows.data ? (
        <Loading />
      ) : rows.data.length === 0 ? (
        <Empty title={t("api_no_routes")} />
      ) : (
        <div className="table-wrap" tabIndex={0}>
          <table className="table" data-testid="routes-table">
            <thead>
              <tr>
                <th scope="col">{t("api_service")}</th>
                <th scope="col">{t("api_method")}</th>
                <th scope="col">{t("api_route")}</th>
                <th scope="col" className="num">{t("api_rps")}</th>
                <th scope="col" className="num">{t("api_err")}</th>
                <th scope="col" className="num">{t("api_p50")}</th>
                <th scope="col" className="num">{t("api_p95")}</th>
                <th scope="col" className="num">{t("api_p99")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.data.map((row) => (
                <tr key={row.key}>
                  <td>{row.service}</td>
                  <td>
                    <code>{row.method}</code>
                  </td>
                  <td className="mono">{row.route}</td>
                  <td className="num">{formatValue(row.rps, "per_second")}</td>
                  <td className={"num" + (row.errors > 0 ? " text-bad" : "")}>{formatValue(row.errors, "per_second")}</td>
                  <td className="num">{formatValue(row.p50, "seconds")}</td>
                  <td className="num">{formatValue(row.p95, "seconds")}</td>
                  <td className="num">{formatValue(row.p99, "seconds")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}
