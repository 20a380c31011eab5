/**
 * The bench's plot (pure): wall time against hosts for `reconcile --check`, the tight floor and
 * the OpenSSH floor, as a small self-contained SVG (no fonts or scripts fetched), for
 * BENCHMARKS.md.
 */
export interface PlotSeries {
  label: string;
  colour: string;
  /** [hosts, milliseconds] */
  points: [number, number][];
}

export function hostsPlotSvg(title: string, series: PlotSeries[]): string {
  const width = 640;
  const height = 400;
  const m = { left: 70, right: 20, top: 40, bottom: 60 };
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(...all.map(([x]) => x), 1);
  const maxY = niceCeil(Math.max(...all.map(([, y]) => y), 1));
  const x = (v: number) => m.left + (v / maxX) * (width - m.left - m.right);
  const y = (v: number) => height - m.bottom - (v / maxY) * (height - m.top - m.bottom);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="14">${escape(title)}</text>`);
  // Axes and grid.
  for (let i = 0; i <= 5; i++) {
    const v = (maxY * i) / 5;
    out.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)} ms</text>`);
  }
  for (const hx of [...new Set(all.map(([h]) => h))].sort((a, b) => a - b)) {
    out.push(`<line x1="${x(hx)}" x2="${x(hx)}" y1="${y(0)}" y2="${y(0) + 5}" stroke="black"/>`);
    out.push(`<text x="${x(hx)}" y="${y(0) + 18}" text-anchor="middle">${hx}</text>`);
  }
  out.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y(0)}" y2="${y(0)}" stroke="black"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${y(0)}" stroke="black"/>`);
  out.push(`<text x="${(m.left + width - m.right) / 2}" y="${height - 22}" text-anchor="middle">hosts</text>`);
  // Series.
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    out.push(
      `<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${pts.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const [px, py] of pts) out.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${s.colour}"/>`);
    const ly = m.top + 4 + i * 16;
    out.push(`<line x1="${m.left + 12}" x2="${m.left + 32}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="2"/>`);
    out.push(`<text x="${m.left + 38}" y="${ly + 4}">${escape(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
