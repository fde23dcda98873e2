// Number and time formatting shared by cards, charts and tables.

export type Unit = "percent" | "bytes" | "bytes_per_second" | "seconds" | "per_second" | "ratio" | "number";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function trim(value: number, digits: number): string {
  return Number(value.toFixed(digits)).toString();
}

export function formatBytes(value: number): string {
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return (value < 0 ? "-" : "") + trim(v, v < 10 ? 2 : v < 100 ? 1 : 0) + " " + BYTE_UNITS[i];
}

export function formatSeconds(value: number): string {
  const v = Math.abs(value);
  if (v === 0) return "0 s";
  if (v < 1e-3) return trim(value * 1e6, 0) + " µs";
  if (v < 1) return trim(value * 1e3, v < 0.01 ? 2 : 1) + " ms";
  if (v < 120) return trim(value, 2) + " s";
  if (v < 7200) return trim(value / 60, 1) + " min";
  return trim(value / 3600, 1) + " h";
}

export function formatNumber(value: number): string {
  const v = Math.abs(value);
  if (v >= 1e9) return trim(value / 1e9, 2) + "G";
  if (v >= 1e6) return trim(value / 1e6, 2) + "M";
  if (v >= 1e4) return trim(value / 1e3, 1) + "k";
  if (v >= 100) return trim(value, 0);
  if (v >= 1) return trim(value, 2);
  if (v === 0) return "0";
  return trim(value, 3);
}

export function formatValue(value: number | null | undefined, unit: Unit): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  switch (unit) {
    case "percent":
      return trim(value, value < 10 ? 1 : 0) + "%";
    case "ratio":
      return trim(value * 100, value < 0.1 ? 2 : 1) + "%";
    case "bytes":
      return formatBytes(value);
    case "bytes_per_second":
      return formatBytes(value) + "/s";
    case "seconds":
      return formatSeconds(value);
    case "per_second":
      return formatNumber(value) + "/s";
    case "number":
      return formatNumber(value);
  }
}

/** A timestamp in the browser's zone, as date and time. */
export function formatTime(at: string | number | null | undefined, locale: string): string {
  if (at === null || at === undefined || at === "") return "–";
  const date = typeof at === "number" ? new Date(at) : new Date(at);
  if (Number.isNaN(date.getTime())) return String(at);
  return date.toLocaleString(locale, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** "3 min ago" in the given locale. */
export function formatAgo(at: string | number | null | undefined, locale: string, now = Date.now()): string {
  if (at === null || at === undefined || at === "") return "–";
  const ms = (typeof at === "number" ? at : Date.parse(at)) - now;
  if (Number.isNaN(ms)) return String(at);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  const s = Math.round(ms / 1000);
  const abs = Math.abs(s);
  if (abs < 60) return rtf.format(s, "second");
  if (abs < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

/** Parses `15m`, `1h`, `7d`, `30s` into seconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]);
  const mult = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[match[2] as "s" | "m" | "h" | "d" | "w"];
  return n * mult;
}

/** A label set in PromQL style: `{job="node", mode="idle"}` without `__name__`. */
export function formatLabels(metric: Record<string, string>): string {
  const name = metric.__name__ ?? "";
  const rest = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return rest ? `${name}{${rest}}` : name || "{}";
}

/** A unit guessed from a PromQL expression's metric names (Prometheus naming conventions). */
export function unitFor(query: string): Unit {
  const q = query.replace(/\s+/g, "");
  const perSecond = /\b(rate|irate|deriv)\(/.test(q);
  if (/_bytes(_total)?\b/.test(q)) return perSecond ? "bytes_per_second" : "bytes";
  if (/_seconds(_total|_sum|_bucket)?\b/.test(q) && !perSecond) return "seconds";
  if (/^histogram_quantile\(/.test(q) && /_seconds_bucket/.test(q)) return "seconds";
  if (/_total\b/.test(q) && perSecond) return "per_second";
  return "number";
}
