// The dashboard: reads the management API with the session cookie (same origin) and draws tables and charts.
// Every value goes into the page through textContent, never innerHTML: nothing stored can run as script here.
import { lineChart } from "./chart.js";

const TRAFFIC_EVERY_MS = 2000;
const TABLES_EVERY_MS = 5000;
const qualityByVersion = new Map();

class SignedOut extends Error {}

async function read(path, as = "json") {
  const answer = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (answer.status === 401) {
    window.location.assign("/ui/login");
    throw new SignedOut();
  }
  if (!answer.ok) {
    let detail = `${answer.status}`;
    try { detail = (await answer.json()).detail || detail; } catch { /* not a problem document */ }
    throw new Error(`${path}: ${detail}`);
  }
  return as === "text" ? answer.text() : answer.json();
}

function element(name, text, className) {
  const made = document.createElement(name);
  if (text !== undefined && text !== null) made.textContent = String(text);
  if (className) made.className = className;
  return made;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function fill(name, rows) {
  const body = document.querySelector(`[data-testid="${name}"] tbody`);
  body.replaceChildren(...rows);
  document.querySelector(`[data-empty="${name}"]`).hidden = rows.length > 0;
}

function state(value) {
  return element("span", value || "—", `state-${value || "none"}`);
}

function showProblem(error) {
  const box = document.getElementById("problem");
  box.hidden = !error;
  box.textContent = error ? `Could not refresh: ${error.message}` : "";
}

async function guarded(work) {
  try {
    await work();
    showProblem(null);
  } catch (error) {
    if (!(error instanceof SignedOut)) showProblem(error);
  }
}

async function showSession() {
  const who = await read("/api/v1/ui/session");
  document.getElementById("who").textContent = who.dev
    ? "development mode: authentication is off"
    : `${who.subject} (${who.roles.join(", ")})`;
  document.getElementById("logout").hidden = who.dev;
}

function trafficCard(entry) {
  const id = `traffic-${entry.deployment}`;
  let card = document.getElementById(id);
  if (!card) {
    card = element("div", undefined, "card");
    card.id = id;
    card.dataset.testid = id;
    card.append(element("h3"), element("p", undefined, "totals"), element("div", undefined, "chart requests"),
      element("div", undefined, "chart latency"));
  }
  const version = entry.modelName ? `${entry.modelName} ${entry.modelVersion}` : "model not loaded yet";
  card.querySelector("h3").textContent = `${entry.deployment}: ${version}`;
  card.dataset.totalRequests = String(entry.totalRequests);
  const batch = entry.points.length ? entry.points[entry.points.length - 1].meanBatch : null;
  card.querySelector(".totals").textContent =
    `${entry.totalRequests} requests, ${entry.totalErrors} server errors, ` +
    `${entry.scrapedReplicas}/${entry.availableReplicas} replicas read` + (batch ? `, mean batch ${batch}` : "");
  const at = (p) => p.time;
  lineChart(card.querySelector(".requests"), [
    { name: "requests/s", points: entry.points.map((p) => [at(p), p.requestsPerS]) },
    { name: "5xx/s", points: entry.points.map((p) => [at(p), p.errorsPerS]) },
  ], { title: `requests per second of ${entry.deployment}` });
  lineChart(card.querySelector(".latency"), [
    { name: "p50 ms", points: entry.points.map((p) => [at(p), p.p50Ms]) },
    { name: "p95 ms", points: entry.points.map((p) => [at(p), p.p95Ms]) },
  ], { unit: "", title: `latency of ${entry.deployment} in milliseconds` });
  return card;
}

async function refreshTraffic() {
  const traffic = await read("/api/v1/ui/traffic");
  const serving = traffic.deployments.filter((d) => d.availableReplicas > 0 || d.points.length > 0);
  document.getElementById("traffic").replaceChildren(...serving.map(trafficCard));
  document.querySelector('[data-empty="traffic"]').hidden = serving.length > 0;
}

function weights(route) {
  const cell = element("span");
  for (const target of route.spec.modelDeployments || []) {
    const bar = element("span", undefined, "bar");
    bar.style.width = `${Math.max(2, target.weight)}px`;
    cell.append(bar, element("span", `${target.mdName} ${target.weight}%  `));
  }
  return cell;
}

function showLog(training) {
  const pre = document.getElementById("log");
  pre.hidden = false;
  pre.textContent = `loading the log of ${training}…`;
  read(`/api/v1/model/training/${encodeURIComponent(training)}/log`, "text")
    .then((text) => { pre.textContent = text || "(the log is empty)"; })
    .catch((error) => { if (!(error instanceof SignedOut)) pre.textContent = error.message; });
}

function qualityText(q) {
  if (q.accuracy !== null) return `accuracy ${q.accuracy.toFixed(4)} (${q.compared})`;
  if (q.meanAbsoluteError !== null) return `MAE ${q.meanAbsoluteError.toFixed(4)} (${q.compared})`;
  return "no feedback yet";
}

async function refreshTables() {
  const [deployments, routes, models, trainings, quality, predictions] = await Promise.all([
    read("/api/v1/model/deployment"), read("/api/v1/model/route"), read("/api/v1/model"),
    read("/api/v1/model/training"), read("/api/v1/quality"), read("/api/v1/predictions?limit=20"),
  ]);
  fill("deployments", deployments.map((d) => row([
    d.id,
    d.status?.modelName ? `${d.status.modelName} ${d.status.modelVersion}` : d.spec.image,
    state(d.status?.state),
    `${d.status?.availableReplicas ?? 0} / ${d.spec.minReplicas ?? 1}`,
    (d.status?.endpoints || []).join(" "),
  ])));
  fill("routes", routes.map((r) => row([r.id, r.spec.urlPrefix, weights(r), r.spec.mirror || "", state(r.status?.state)])));
  qualityByVersion.clear();
  for (const q of quality) qualityByVersion.set(`${q.modelName} ${q.modelVersion}`, q);
  fill("models", models.map((m) => {
    const online = qualityByVersion.get(`${m.name} ${m.version}`);
    const metrics = Object.entries(m.metrics || {}).map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(4) : v}`);
    return row([m.name, m.version, m.source, metrics.join(", "),
      online ? qualityText(online) : "no feedback yet", m.deployments.join(", ")]);
  }));
  fill("trainings", trainings.map((t) => {
    const button = element("button", "show log");
    button.type = "button";
    button.addEventListener("click", () => showLog(t.id));
    const model = t.spec.model ? `${t.spec.model.name} ${t.spec.model.version}` : "";
    return row([t.id, model, state(t.status?.state), t.status?.exitCode ?? "", t.status?.reason || "", button]);
  }));
  document.getElementById("quality").replaceChildren(...quality.map((q) => {
    const card = element("div", undefined, "card");
    card.append(element("h3", `${q.modelName} ${q.modelVersion}: ${qualityText(q)}, ${q.feedbackCount} feedback`));
    const chart = element("div", undefined, "chart");
    const measure = q.accuracy !== null ? "accuracy" : "mean absolute error";
    lineChart(chart, [{ name: measure, points: q.points }], { title: `${measure} of ${q.modelName} ${q.modelVersion}` });
    card.append(chart);
    return card;
  }));
  document.querySelector('[data-empty="quality"]').hidden = quality.length > 0;
  fill("predictions", predictions.map((p) => row([
    new Date(p.time * 1000).toLocaleTimeString(), p.deployment, `${p.modelName} ${p.modelVersion}`, p.requestId,
    p.status, `${(p.latencyS * 1000).toFixed(1)} ms`, JSON.stringify(p.outputs),
    p.feedback === null ? "—" : JSON.stringify(p.feedback),
  ])));
}

function every(ms, work) {
  const tick = async () => {
    await guarded(work);
    window.setTimeout(tick, ms);
  };
  tick();
}

guarded(showSession);
every(TABLES_EVERY_MS, refreshTables);
every(TRAFFIC_EVERY_MS, refreshTraffic);
