import { describe, expect, it } from "vitest";
import { formatBytes, formatLabels, formatSeconds, formatValue, parseDuration, unitFor } from "./format";
import { errorMessage, readCookie, stepFor } from "./api";
import { rangeFromParams, refreshEvery } from "./timerange";

describe("formatting", () => {
  it("writes bytes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(10 * 1024 ** 3)).toBe("10 GiB");
  });

  it("writes durations at a readable scale", () => {
    expect(formatSeconds(0.0004)).toBe("400 µs");
    expect(formatSeconds(0.0794)).toBe("79.4 ms");
    expect(formatSeconds(2.5)).toBe("2.5 s");
    expect(formatSeconds(600)).toBe("10 min");
  });

  it("shows a dash for missing values and percentages for ratios", () => {
    expect(formatValue(null, "percent")).toBe("–");
    expect(formatValue(Number.NaN, "number")).toBe("–");
    expect(formatValue(0.0123, "ratio")).toBe("1.23%");
    expect(formatValue(12.34, "percent")).toBe("12%");
  });

  it("parses Prometheus durations", () => {
    expect(parseDuration("15m")).toBe(900);
    expect(parseDuration("7d")).toBe(604800);
    expect(parseDuration("soon")).toBeUndefined();
  });

  it("writes label sets as PromQL does, sorted, name first", () => {
    expect(formatLabels({ __name__: "up", job: "node", instance: "a" })).toBe('up{instance="a", job="node"}');
  });
});

describe("api helpers", () => {
  it("reads hubmon's and Prometheus's error shapes", () => {
    expect(errorMessage(404, { error: { code: "not_found", message: "no user 7" } })).toEqual({
      code: "not_found",
      message: "no user 7",
    });
    expect(errorMessage(400, { status: "error", errorType: "bad_data", error: "parse error" })).toEqual({
      code: "bad_data",
      message: "parse error",
    });
    expect(errorMessage(502, "<html>")).toEqual({ code: "http_502", message: "HTTP 502" });
  });

  it("finds a cookie among others", () => {
    expect(readCookie("hubmon_csrf", "a=1; hubmon_csrf=x%3Dy; b=2")).toBe("x=y");
    expect(readCookie("hubmon_csrf", "a=1")).toBeUndefined();
  });

  it("picks a round step for about 240 points", () => {
    expect(stepFor(900)).toBe(5);
    expect(stepFor(3600)).toBe(15);
    expect(stepFor(7 * 86400)).toBe(3600);
  });
});

describe("time ranges", () => {
  it("reads a preset relative to now", () => {
    const range = rangeFromParams(new URLSearchParams("range=6h"), 100_000_000);
    expect(range).toEqual({ from: 100_000 - 21600, to: 100_000, preset: "6h" });
  });

  it("reads a fixed range from milliseconds and ignores a reversed one", () => {
    expect(rangeFromParams(new URLSearchParams("from=1000&to=5000"), 0)).toEqual({ from: 1, to: 5, preset: undefined });
    expect(rangeFromParams(new URLSearchParams("from=5000&to=1000"), 3_600_000).preset).toBe("1h");
  });
});

describe("refresh pace", () => {
  it("moves every second up to an hour and slows down for longer ranges", () => {
    expect(refreshEvery(900)).toBe(1000);
    expect(refreshEvery(3600)).toBe(1000);
    expect(refreshEvery(86400)).toBe(24000);
  });
});

describe("unit guessing", () => {
  it("reads Prometheus's naming conventions", () => {
    expect(unitFor('node_memory_MemTotal_bytes{job="node"}')).toBe("bytes");
    expect(unitFor("rate(node_network_receive_bytes_total[5m])")).toBe("bytes_per_second");
    expect(unitFor("histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))")).toBe("seconds");
    expect(unitFor("rate(http_requests_total[1m])")).toBe("per_second");
    expect(unitFor("node_load1")).toBe("number");
  });
});
