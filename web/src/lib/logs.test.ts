import { describe, expect, it } from "vitest";
import { addFilter, fieldFilter, highlight, lineFields, type LogHit } from "./logs";

describe("highlight", () => {
  it("splits the message at the matched ranges", () => {
    expect(highlight("connection refused by db", [[11, 18]])).toEqual([
      { text: "connection ", hit: false },
      { text: "refused", hit: true },
      { text: " by db", hit: false },
    ]);
  });

  it("counts code points, so text after an emoji or CJK is still marked right", () => {
    expect(highlight("😀 超时 timeout", [[5, 12]])).toEqual([
      { text: "😀 超时 ", hit: false },
      { text: "timeout", hit: true },
    ]);
  });

  it("ignores overlapping and out-of-range offsets", () => {
    expect(highlight("abc", [[0, 2], [1, 3], [5, 9]]).map((s) => s.text)).toEqual(["ab", "c"]);
  });
});

describe("filters", () => {
  it("quotes values and does not add a filter twice", () => {
    expect(fieldFilter("service", 'a"b')).toBe('service:"a\\"b"');
    expect(fieldFilter("status", 500)).toBe('status:"500"');
    expect(addFilter("timeout", 'level:"error"')).toBe('timeout level:"error"');
    expect(addFilter('timeout level:"error"', 'level:"error"')).toBe('timeout level:"error"');
    expect(addFilter("", 'level:"error"')).toBe('level:"error"');
  });

  it("lists a line's fields, model fields first, skipping empty ones", () => {
    const hit = { id: 1, timestamp: "", level: "error", category: "app", message: "m", service: "api", fields: { status: 502 }, highlights: [] } as LogHit;
    expect(lineFields(hit)).toEqual([
      ["level", "error"],
      ["category", "app"],
      ["service", "api"],
      ["status", 502],
    ]);
  });
});
