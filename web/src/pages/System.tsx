import { ChartPanel } from "../components/ChartPanel";
import { RangePicker } from "../components/RangePicker";
import { useI18n } from "../lib/i18n";
import { Q } from "../lib/queries";
import { useTimeRange } from "../lib/timerange";

export function SystemPage() {
  const { t } = useI18n();
  const range = useTimeRange("1h");
  return (
    <div className="page" data-testid="page-system">
      <div className="toolbar">
        <RangePicker range={range} />
        <span className="muted small">{t("range_zoom_hint")}</span>
      </div>
      <div className="grid grid-charts">
        <ChartPanel
          title={t("sys_cpu")}
          queries={[Q.cpuByMode]}
          range={range}
          unit="percent"
          yRange={[0, 100]}
          fill
          label={(m) => m.mode ?? t("series_total")}
          testId="chart-cpu"
        />
        <ChartPanel
          title={t("sys_cpu_per_core")}
          queries={[Q.cpuPerCore]}
          range={range}
          unit="percent"
          yRange={[0, 100]}
          label={(m) => t("series_core", { n: m.cpu ?? "?" })}
          testId="chart-cpu-cores"
        />
        <ChartPanel
          title={t("sys_memory")}
          queries={[Q.memoryUsed, Q.memoryCached, Q.memoryFree]}
          range={range}
          unit="bytes"
          fill
          label={(_m, q) => [t("series_used"), t("series_cached"), t("series_free")][q] ?? ""}
          testId="chart-memory"
        />
        <ChartPanel
          title={t("sys_disk_usage")}
          queries={[Q.diskPercentByMount]}
          range={range}
          unit="percent"
          yRange={[0, 100]}
          label={(m) => m.mountpoint ?? m.device ?? "?"}
          testId="chart-disk"
        />
        <ChartPanel
          title={t("sys_disk_io")}
          queries={[Q.diskRead, Q.diskWrite]}
          range={range}
          unit="bytes_per_second"
          label={(m, q) => t(q === 0 ? "series_read" : "series_write", { device: m.device ?? "?" })}
          testId="chart-disk-io"
        />
        <ChartPanel
          title={t("sys_network")}
          queries={[Q.netReceive, Q.netTransmit]}
          range={range}
          unit="bytes_per_second"
          label={(m, q) => t(q === 0 ? "series_rx" : "series_tx", { device: m.device ?? "?" })}
          testId="chart-network"
        />
        <ChartPanel
          title={t("sys_load")}
          queries={[Q.load1, Q.load5, Q.load15]}
          range={range}
          unit="number"
          label={(_m, q) => ["1m", "5m", "15m"][q] ?? ""}
          testId="chart-load"
        />
      </div>
    </div>
  );
}
