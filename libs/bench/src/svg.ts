// A small SVG line chart (no dependencies): pages sent and dirty pages per round, one line per
// policy variant, so a reader sees how each policy's rounds shrink (or don't).

export interface Series {
  label: string;
  values: number[];
  dashed?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Rounds on the x axis, a log10 y axis (round 0 is orders of magnitude above the rest). */
export function lineChartSvg(title: string, yLabel: string, series: Series[], width = 760, height = 420): string {
  const left = 70;
  const right = 200;
  const top = 40;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const maxX = Math.max(1, ...series.map((s) => s.values.length - 1));
  const maxV = Math.max(10, ...series.flatMap((s) => s.values));
  const maxLog = Math.ceil(Math.log10(maxV + 1));
  const x = (i: number) => left + (i / maxX) * plotW;
  const y = (v: number) => top + plotH - (Math.log10(v + 1) / maxLog) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let e = 0; e <= maxLog; e++) {
    const yy = y(10 ** e - 1);
    out.push(`<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 8}" y="${yy + 4}" text-anchor="end">${e === 0 ? '0' : `1e${e}`}</text>`);
  }
  for (let i = 0; i <= maxX; i++) {
    out.push(`<text x="${x(i)}" y="${top + plotH + 18}" text-anchor="middle">${i}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">round (last = stop-and-copy)</text>`);
  out.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''} points="${pts}"/>`);
    for (let i = 0; i < s.values.length; i++) out.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(s.values[i]).toFixed(1)}" r="2.5" fill="${color}"/>`);
    const ly = top + 10 + k * 18;
    out.push(`<line x1="${left + plotW + 12}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`);
    out.push(`<text x="${left + plotW + 42}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
