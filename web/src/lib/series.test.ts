import { describe, expect, it } from "vitest";
import { alignRange, toColumns } from "./series";

describe("toColumns", () => {
  it("puts each sample in the column of its step and leaves gaps as null", () => {
    const columns = toColumns(
      [[{ metric: { a: "1" }, values: [[100, "1"], [110, "2"]] }], [{ metric: { b: "2" }, values: [[120, "3"]] }]],
      100,
      120,
      10,
    );
    expect(columns).toEqual([
      [100, 110, 120],
      [1, 2, null],
      [null, null, 3],
    ]);
  });

  it("turns NaN and infinities into gaps", () => {
    const columns = toColumns([[{ metric: {}, values: [[0, "NaN"], [1, "+Inf"], [2, "5"]] }]], 0, 2, 1);
    expect(columns[1]).toEqual([null, null, 5]);
  });
});

describe("alignRange", () => {
  it("ends the grid at the end of the range in whole steps", () => {
    expect(alignRange(1000, 1095.5, 10)).toEqual({ start: 1005.5, end: 1095.5 });
  });
});
