// Hand-drawn SVG line charts over hourly points: no library, no HTML parsing (text nodes only).
const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2f6fdf', '#e8590c', '#12b886', '#ae3ec9', '#c92a2a'];
const W = 480;
const H = 180;
const PAD = { left: 56, right: 10, top: 10, bottom: 24 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const hourLabel = (d, spanHours) =>
  spanHours > 48 ? `${d.getMonth() + 1}/${d.getDate()}` : `${String(d.getHours()).padStart(2, '0')}:00`;

/**
 * A figure with one polyline per series. `values` may hold null (no data that hour: the line
 * breaks). `format` labels the y axis; `opts.max` fixes the top (e.g. 1 for ratios).
 */
export function lineChart(title, x, series, format, opts = {}) {
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const top = opts.max ?? Math.max(1, ...all) * 1.1;
  const n = x.length;
  const px = (i) => PAD.left + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.left - PAD.right));
  const py = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', 'aria-label': title });
  root.append(svg('title', {}, title));
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    root.append(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: py(v), y2: py(v) }));
    root.append(svg('text', { x: PAD.left - 4, y: py(v) + 3, 'text-anchor': 'end' }, format(opts.max ? v : Math.round(v))));
  }
  root.append(svg('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }));
  const ticks = Math.min(6, n);
  for (let k = 0; k < ticks; k++) {
    const i = ticks === 1 ? 0 : Math.round((k * (n - 1)) / (ticks - 1));
    root.append(svg('text', { x: px(i), y: H - 8, 'text-anchor': 'middle' }, hourLabel(x[i], n)));
  }
  let points = 0;
  series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    let run = [];
    const flush = () => {
      if (run.length) root.append(svg('polyline', { points: run.join(' '), stroke: color, 'data-series': s.name }));
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return flush();
      run.push(`${px(i).toFixed(1)},${py(v).toFixed(1)}`);
      if (v > 0) {
        points++;
        const dot = svg('circle', { cx: px(i), cy: py(v), r: 2.5, fill: color, 'data-series': s.name });
        dot.append(svg('title', {}, `${s.name}, ${x[i].toLocaleString()}: ${format(v)}`));
        root.append(dot);
      }
    });
    flush();
  });
  const fig = document.createElement('figure');
  fig.className = 'chart';
  fig.dataset.chart = title;
  fig.dataset.points = String(points);
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  const legend = document.createElement('div');
  legend.className = 'legend';
  series.forEach((s, si) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = COLORS[si % COLORS.length];
    item.append(swatch, s.name);
    legend.append(item);
  });
  fig.append(cap, root, legend);
  return fig;
}
