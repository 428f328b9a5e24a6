// LineChart draws one series over time as SVG: no charting library (the
// bundle stays small), an accessible name and a text summary beside it.
export type Point = { t: number; v: number | null };

export function LineChart({ title, points, format, color = "#0b5cad" }: { title: string; points: Point[]; format: (v: number) => string; color?: string }) {
  const w = 720;
  const h = 180;
  const pad = { l: 70, r: 12, t: 12, b: 28 };
  const vals = points.filter((p) => p.v !== null) as { t: number; v: number }[];
  if (vals.length === 0) {
    return (
      <figure className="chart">
        <figcaption>{title}</figcaption>
        <p className="hint">No samples in this range.</p>
      </figure>
    );
  }
  const t0 = Math.min(...vals.map((p) => p.t));
  const t1 = Math.max(...vals.map((p) => p.t), t0 + 1);
  const vMax = Math.max(...vals.map((p) => p.v), 1);
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
  const y = (v: number) => h - pad.b - (v / vMax) * (h - pad.t - pad.b);
  const d = vals.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  const last = vals[vals.length - 1];
  return (
    <figure className="chart">
      <figcaption>
        {title}: latest {format(last.v)}, max {format(vMax)}
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${title} over time, latest ${format(last.v)}, max ${format(vMax)}`}>
        <line x1={pad.l} y1={h - pad.b} x2={w - pad.r} y2={h - pad.b} stroke="#8c959f" />
        <line x1={pad.l} y1={pad.t} x2={pad.l} y2={h - pad.b} stroke="#8c959f" />
        <text x={pad.l - 6} y={pad.t + 10} textAnchor="end" fontSize="11" fill="#57606a">
          {format(vMax)}
        </text>
        <text x={pad.l - 6} y={h - pad.b} textAnchor="end" fontSize="11" fill="#57606a">
          0
        </text>
        <text x={pad.l} y={h - 8} fontSize="11" fill="#57606a">
          {new Date(t0).toLocaleTimeString()}
        </text>
        <text x={w - pad.r} y={h - 8} textAnchor="end" fontSize="11" fill="#57606a">
          {new Date(t1).toLocaleTimeString()}
        </text>
        <path d={d} fill="none" stroke={color} strokeWidth="2" />
        {vals.length === 1 && <circle cx={x(last.t)} cy={y(last.v)} r="3" fill={color} />}
      </svg>
    </figure>
  );
}
