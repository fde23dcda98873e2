// The PromQL behind the dashboards, over node_exporter-compatible host series (job="node") and
// hubmon's request metrics. The server's summary uses the same expressions.

const FS = 'job="node",fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|fuse.*"';

export const Q = {
  cpuPercent: '100 * (1 - avg(rate(node_cpu_seconds_total{job="node",mode="idle"}[1m])))',
  cpuByMode: 'sum by (mode) (rate(node_cpu_seconds_total{job="node",mode!="idle"}[1m])) / scalar(count(node_cpu_seconds_total{job="node",mode="idle"})) * 100',
  cpuPerCore: '100 * (1 - avg by (cpu) (rate(node_cpu_seconds_total{job="node",mode="idle"}[1m])))',
  memoryPercent: '100 * (1 - node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"})',
  memoryUsed: 'node_memory_MemTotal_bytes{job="node"} - node_memory_MemAvailable_bytes{job="node"}',
  memoryCached: 'node_memory_Cached_bytes{job="node"} + node_memory_Buffers_bytes{job="node"}',
  memoryFree: 'node_memory_MemFree_bytes{job="node"}',
  diskPercentMax: `max(100 * (1 - node_filesystem_avail_bytes{${FS}} / node_filesystem_size_bytes{${FS}}))`,
  diskPercentByMount: `100 * (1 - node_filesystem_avail_bytes{${FS}} / node_filesystem_size_bytes{${FS}})`,
  diskRead: 'rate(node_disk_read_bytes_total{job="node"}[1m])',
  diskWrite: 'rate(node_disk_written_bytes_total{job="node"}[1m])',
  netReceive: 'rate(node_network_receive_bytes_total{job="node",device!="lo"}[1m])',
  netTransmit: 'rate(node_network_transmit_bytes_total{job="node",device!="lo"}[1m])',
  load1: 'node_load1{job="node"}',
  load5: 'node_load5{job="node"}',
  load15: 'node_load15{job="node"}',
};

function sel(service: string | undefined): string {
  return service ? `service="${service.replace(/["\\]/g, "\\$&")}"` : "";
}

/** Request metrics, optionally for one service. */
export const API = {
  rps: (s?: string) => `sum(rate(http_requests_total{${sel(s)}}[1m]))`,
  rpsByService: () => "sum by (service) (rate(http_requests_total[1m]))",
  // "or vector(0)": no 5xx at all is a 0 % error rate, not a missing series.
  errorRatio: (s?: string) =>
    `(sum(rate(http_requests_total{${[sel(s), 'status=~"5.."'].filter(Boolean).join(",")}}[5m])) or vector(0)) / sum(rate(http_requests_total{${sel(s)}}[5m]))`,
  quantile: (q: number, s?: string) =>
    `histogram_quantile(${q}, sum by (le) (rate(http_request_duration_seconds_bucket{${sel(s)}}[5m])))`,
  activeKeys: (s?: string) => `sum(hubmon_api_active_keys{${sel(s)}})`,
  routeRps: (s?: string) => `sum by (service, route, method) (rate(http_requests_total{${sel(s)}}[5m]))`,
  routeErrors: (s?: string) =>
    `sum by (service, route, method) (rate(http_requests_total{${[sel(s), 'status=~"5.."'].filter(Boolean).join(",")}}[5m]))`,
  routeQuantile: (q: number, s?: string) =>
    `histogram_quantile(${q}, sum by (service, route, method, le) (rate(http_request_duration_seconds_bucket{${sel(s)}}[5m])))`,
  services: "count by (service) (http_requests_total)",
};
