import { describe, expect, it } from "vitest";
import { en, translate, zh } from "./i18n";

describe("translations", () => {
  it("has every string in both languages, none empty", () => {
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
    for (const [key, text] of Object.entries(zh)) expect(text.trim(), key).not.toBe("");
  });

  it("keeps the same placeholders in both languages", () => {
    const holes = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      expect(holes(zh[key]), key).toEqual(holes(en[key]));
    }
  });

  it("fills placeholders", () => {
    expect(translate("en", "ov_components", { up: 3, total: 4 })).toBe("3 of 4 components up");
    expect(translate("zh", "ov_components", { up: 3, total: 4 })).toBe("4 个组件中 3 个正常");
  });
});
