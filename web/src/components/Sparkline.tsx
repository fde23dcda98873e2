// A small chart without axes for stat cards.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import type { Columns } from "../lib/series";

export function Sparkline({ columns, color, label }: { columns: Columns; color: string; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const instance = new uPlot(
      {
        width: Math.max(element.clientWidth, 80),
        height: 40,
        legend: { show: false },
        cursor: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.15 : 1] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: color, width: 1.5, fill: color + "26", points: { size: 4 } }],
        padding: [2, 0, 2, 0],
      },
      columns as uPlot.AlignedData,
      element,
    );
    plot.current = instance;
    const observer = new ResizeObserver(() => instance.setSize({ width: Math.max(element.clientWidth, 80), height: 40 }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      instance.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [color]);
  useEffect(() => {
    plot.current?.setData(columns as uPlot.AlignedData);
  }, [columns]);
  return <div className="sparkline" ref={box} role="img" aria-label={label} />;
}
