// Number, byte and time formatting shared by every page.
export function fmtInt(n: number | null | undefined): string {
  return n === null || n === undefined ? "–" : n.toLocaleString("en-US");
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function fmtRate(r: number | null | undefined): string {
  return r === null || r === undefined ? "–" : `${r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US")}/s`;
}

export function fmtTime(t: string | null | undefined): string {
  if (!t) return "–";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toLocaleString();
}
