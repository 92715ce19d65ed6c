import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

/**
 * A time series chart (uPlot: ~50 kB, canvas). `times` are epoch seconds. The figures are also
 * in the table beside each chart, for screen readers and for copying.
 */
export function Chart(props: { title: string; times: number[]; series: Series[]; percent?: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(260, el.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        series: [
          {},
          ...props.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            points: { show: props.times.length < 50 },
            spanGaps: false,
            value: (_u: uPlot, v: number | null) =>
              v === null ? '–' : props.percent ? `${(v * 100).toFixed(2)} %` : String(v),
          })),
        ],
        axes: [
          {},
          {
            size: 60,
            values: (_u, vals) => vals.map((v) => (props.percent ? `${(v * 100).toFixed(1)}%` : String(v))),
          },
        ],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(max, props.percent ? 0.01 : 1)] } },
      },
      [props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.times, props.series, props.percent]);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} role="img" aria-label={`${props.title} chart`} />
    </figure>
  );
}
