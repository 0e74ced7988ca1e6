// A small SVG line chart: no library, no CDN. Used by app.js for traffic, latency and accuracy.
// lineChart(container, series, {unit}) draws each series [{name, points: [[x, y|null], ...]}] on shared axes.
const NS = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 140;
const PAD = { left: 44, right: 8, top: 8, bottom: 18 };

function node(name, attributes, text) {
  const element = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function label(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(1);
  return value.toFixed(2);
}

export function lineChart(container, series, { unit = "", title = "" } = {}) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((y) => y !== null));
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title });
  const count = Math.max(0, ...series.map((s) => s.points.length));
  container.dataset.points = String(count);
  container.dataset.max = String(Math.max(0, ...ys));
  container.dataset.last = series.map((s) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    return last === null ? "" : String(last);
  }).join(",");
  const top = niceMax(Math.max(0, ...ys));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const sx = (x) => PAD.left + (x1 > x0 ? ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right) : 0);
  const sy = (y) => HEIGHT - PAD.bottom - (y / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const fraction of [0, 0.5, 1]) {
    const y = sy(top * fraction);
    svg.append(node("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(node("text", { x: PAD.left - 4, y: y + 4, class: "axis", "text-anchor": "end" },
      `${label(top * fraction)}${unit}`));
  }
  if (count === 0) {
    svg.append(node("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "axis", "text-anchor": "middle" }, "waiting for data"));
  }
  series.forEach((s, index) => {
    let path = "";
    let pen = "M";
    let last = null;
    for (const [x, y] of s.points) {
      if (y === null) { pen = "M"; continue; }
      path += `${pen}${sx(x).toFixed(1)},${sy(y).toFixed(1)} `;
      pen = "L";
      last = [x, y];
    }
    if (path) svg.append(node("path", { d: path.trim(), class: `line line-${index}` }));
    if (last) svg.append(node("circle", { cx: sx(last[0]), cy: sy(last[1]), r: 2.5, class: `dot line-${index}` }));
    svg.append(node("text", { x: PAD.left + 6 + index * 110, y: HEIGHT - 4, class: `legend line-${index}` }, s.name));
  });
  container.replaceChildren(svg);
}
