// The time-range picker: presets, a custom from/to, and a reset after a drag-zoom.
import { useState } from "react";
import { useI18n } from "../lib/i18n";
import { setParams } from "../lib/router";
import { PRESETS, type TimeRange } from "../lib/timerange";

function toLocalInput(seconds: number): string {
  const date = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Zooms the page to [from, to] (seconds), e.g. after a drag on a chart. */
export function zoomTo(from: number, to: number): void {
  setParams({ range: undefined, from: String(Math.round(from * 1000)), to: String(Math.round(to * 1000)) });
}

export function RangePicker({ range }: { range: TimeRange }) {
  const { t } = useI18n();
  const [custom, setCustom] = useState(false);
  const [from, setFrom] = useState(() => toLocalInput(range.from));
  const [to, setTo] = useState(() => toLocalInput(range.to));
  const choose = (preset: string) => {
    setCustom(false);
    setParams({ range: preset, from: undefined, to: undefined });
  };
  const apply = (event: React.FormEvent) => {
    event.preventDefault();
    const start = new Date(from).getTime();
    const end = new Date(to).getTime();
    if (Number.isFinite(start) && Number.isFinite(end) && end > start) zoomTo(start / 1000, end / 1000);
  };
  return (
    <div className="range-picker">
      <div className="segmented" role="group" aria-label={t("range")}>
        {PRESETS.map((p) => (
          <button
            key={p}
            type="button"
            className={range.preset === p && !custom ? "active" : ""}
            aria-pressed={range.preset === p && !custom}
            onClick={() => choose(p)}
          >
            {p}
          </button>
        ))}
        <button
          type="button"
          className={range.preset === undefined || custom ? "active" : ""}
          aria-pressed={range.preset === undefined || custom}
          onClick={() => {
            setFrom(toLocalInput(range.from));
            setTo(toLocalInput(range.to));
            setCustom((c) => !c);
          }}
        >
          {t("range_custom")}
        </button>
      </div>
      {range.preset === undefined && !custom ? (
        <button type="button" className="btn btn-small btn-ghost" onClick={() => choose("1h")}>
          {t("range_reset")}
        </button>
      ) : null}
      {custom ? (
        <form className="custom-range" onSubmit={apply}>
          <label>
            <span>{t("range_from")}</span>
            <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
          </label>
          <label>
            <span>{t("range_to")}</span>
            <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
          </label>
          <button type="submit" className="btn btn-small btn-primary">
            {t("range_apply")}
          </button>
        </form>
      ) : null}
    </div>
  );
}
