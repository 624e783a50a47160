/* The Deployments view: renders the JSON endpoints of this plugin (api/...) with uPlot charts.
   Routes: #/ (live now, DORA's four keys, the releases table) and #/release/<folder>/<run>. */
"use strict";

const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

const badge = (text) => el("span", { class: `badge ${text || ""}` }, text || "—");
const short = (sha) => (sha ? sha.slice(0, 12) : "—");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const epoch = (iso) => (iso ? Date.parse(iso) / 1000 : null);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function linkList(links) {
  const names = { airflow_run: "Airflow run", github_release: "GitHub release",
    cloudformation_stack: "CloudFormation stack", amplify_job: "Amplify job" };
  return el("span", { class: "links" }, Object.entries(names).map(([key, label]) =>
    links && links[key] ? el("a", { href: links[key], target: "_top", "data-link": key }, label) : null));
}

/* ---------------------------------------------------------------- charts */
/* opts.lines: horizontal thresholds [{value, label}], drawn across the plot and kept inside the y range. */
function chart(container, title, opts) {
  const lines = (opts.lines || []).filter((l) => l.value !== null && l.value !== undefined);
  const box = el("div", { class: "chart", "data-chart": title });
  box.append(el("div", { class: "title" }, title, lines.length ? el("span", { class: "muted" }, ` — ${lines.map((l) => l.label).join(", ")}`) : null));
  container.append(box);
  const xs = opts.data[0].filter((v) => v !== null);
  const pad = Math.max((Math.max(...xs) - Math.min(...xs)) * 0.03, 5);
  const xRange = xs.length ? [Math.min(...xs) - pad, Math.max(...xs) + pad] : undefined;
  const yRange = (u, min, max) => {
    const values = [min, max, ...lines.map((l) => l.value)].filter((v) => v !== null && Number.isFinite(v));
    const high = Math.max(...values, 0);
    return [Math.min(0, ...values), high > 0 ? high * 1.15 : 1];
  };
  const drawLines = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#c62828";
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const line of lines) {
      const y = u.valToPos(line.value, "y", true);
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
    }
    ctx.restore();
  };
  return new uPlot({ width: opts.width || 420, height: opts.height || 180,
    scales: { x: { time: opts.time !== false, range: xRange }, y: { range: yRange } },
    series: [{}, ...opts.series], axes: opts.axes, legend: { show: true }, hooks: { draw: [drawLines] } }, opts.data, box);
}

const breachMarks = { label: "breach", stroke: "#c62828", width: 0, paths: () => null,
  points: { show: true, size: 10, fill: "#c62828", stroke: "#c62828" } };
const pollSeries = (label, stroke) => ({ label, stroke, width: 2, points: { show: true, size: 5 } });

function watchCharts(watch) {
  const box = el("div", { class: "charts" });
  const polls = watch.polls || [];
  if (!polls.length) return el("p", { class: "muted" }, "no polls recorded");
  const xs = polls.map((p) => epoch(p.at));
  const breached = polls.map((p) => p.outcome === "breach");
  const t = watch.thresholds || {};
  const mark = (values) => values.map((v, i) => (breached[i] ? v : null));
  const errors = polls.map((p) => p.error_rate_percent);
  const stable = polls.map((p) => p.stable_error_rate_percent);
  const hasStable = stable.some((v) => v !== null && v !== undefined);
  chart(box, "error rate %", { lines: [{ value: t.error_rate_percent, label: `threshold ${t.error_rate_percent} %` }],
    data: [xs, errors, ...(hasStable ? [stable] : []), mark(errors)],
    series: [pollSeries("new colour", "#2b6cb0"), ...(hasStable ? [pollSeries("stable colour", "#6b7785")] : []), breachMarks] });
  const latency = polls.map((p) => p.latency_ms);
  chart(box, "latency ms", { lines: [{ value: t.latency_ms, label: `threshold ${t.latency_ms} ms` }],
    data: [xs, latency, mark(latency)], series: [pollSeries("latency", "#2b6cb0"), breachMarks] });
  const rps = polls.map((p) => p.requests_per_second);
  const band = Array.isArray(t.traffic_band) && watch.baseline_rps ? t.traffic_band.map((f) => f * watch.baseline_rps) : [];
  chart(box, "requests / s", { lines: band.map((v, i) => ({ value: v, label: `${i ? "high" : "low"} ${v.toFixed(0)}/s` })),
    data: [xs, rps, mark(rps)], series: [pollSeries("requests/s", "#2b6cb0"), breachMarks] });
  return box;
}

function trendCharts(trend) {
  const box = el("div", { class: "charts", id: "dora-trend" });
  const xs = trend.map((b) => epoch(b.start));
  const line = (label, colour) => ({ label, stroke: colour, width: 2, spanGaps: true, points: { show: true, size: 6 } });
  const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : undefined;
  chart(box, "deployments", { width: 320, data: [xs, trend.map((b) => b.deployments)],
    series: [{ label: "deployments", stroke: "#2b6cb0", fill: "#2b6cb055", paths: bars }] });
  chart(box, "lead time (h)", { width: 320, data: [xs, trend.map((b) => (b.lead_time_seconds === null ? null : b.lead_time_seconds / 3600))],
    series: [line("median lead time", "#2b6cb0")] });
  chart(box, "change failure rate %", { width: 320, data: [xs, trend.map((b) => (b.change_failure_rate === null ? null : b.change_failure_rate * 100))],
    series: [line("failure rate", "#c62828")] });
  chart(box, "time to restore (min)", { width: 320, data: [xs, trend.map((b) => (b.time_to_restore_seconds === null ? null : b.time_to_restore_seconds / 60))],
    series: [line("median restore", "#b26a00")] });
  return box;
}

/* ---------------------------------------------------------------- pages */
function liveSection(live) {
  const colours = Object.entries(live.colours || {}).map(([colour, c]) =>
    el("div", { class: "card", "data-colour": colour }, el("div", { class: "label" }, `${colour} (${c.branch})`),
      el("div", { class: "value" }, c.version || "—"), el("div", { class: "muted" }, `weight ${c.weight ?? "—"}`)));
  return el("section", { id: "live" }, el("h2", {}, "Live now"),
    el("div", { class: "cards" },
      el("div", { class: "card" }, el("div", { class: "label" }, "stack version"),
        el("div", { class: "value", id: "live-stack-version" }, live.stack ? live.stack.version : "—"),
        el("div", { class: "muted" }, live.stack ? `${live.stack.name} · ${live.stack.status}` : "")),
      el("div", { class: "card" }, el("div", { class: "label" }, "weights"),
        el("div", { class: "value", id: "live-weights" },
          live.weights ? Object.entries(live.weights).map(([c, w]) => `${c} ${w}`).join(" / ") : "—"),
        el("div", { class: "muted" }, live.in_flight ? "a release is shifting traffic" : `live: ${live.live_colour || "—"}`)),
      live.api_alias ? el("div", { class: "card" }, el("div", { class: "label" }, "API alias"),
        el("div", { class: "value", id: "live-api-alias" }, aliasText(live.api_alias)),
        el("div", { class: "muted" }, "Lambda versions")) : null,
      colours),
    (live.errors || []).map((e) => el("p", { class: "error" }, e)));
}

const DORA_CARDS = [
  ["deployment_frequency_per_day", "deployment frequency", (v) => (v === null ? "—" : `${v.toFixed(2)} / day`)],
  ["lead_time_seconds", "lead time for changes", duration],
  ["change_failure_rate", "change failure rate", (v) => (v === null ? "—" : `${(v * 100).toFixed(1)} %`)],
  ["time_to_restore_seconds", "time to restore", duration],
];

async function doraSection(days) {
  const section = el("section", { id: "dora" });
  const tabs = el("span", { class: "tabs" }, [7, 30, 90].map((d) =>
    el("button", { class: d === days ? "active" : "", onclick: () => renderDora(section, d) }, `${d} days`)));
  section.append(el("h2", {}, "DORA's four keys ", tabs));
  await renderDora(section, days, tabs);
  return section;
}

async function renderDora(section, days) {
  const dora = await getJSON(`api/dora?days=${days}`);
  section.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b.textContent === `${days} days`));
  section.querySelectorAll(".dora-body").forEach((n) => n.remove());
  const cards = el("div", { class: "cards" }, DORA_CARDS.map(([key, label, format]) =>
    el("div", { class: "card", "data-key": key }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, format(dora[key])), badge(dora.bands[key]))),
  el("div", { class: "card" }, el("div", { class: "label" }, "DORA band (weakest key)"),
    el("div", { class: "value", id: "dora-band" }, dora.band || "—"),
    el("div", { class: "muted" }, `${dora.deployments} deployments, ${dora.failures} rolled back`)));
  const body = el("div", { class: "dora-body" }, cards,
    dora.lead_time_from_trigger ? el("p", { class: "muted" },
      `${dora.lead_time_from_trigger} lead time(s) measured from the trigger: the first commit's time was unavailable.`) : null);
  section.append(body);
  body.append(trendCharts(dora.trend));
}

function releasesTable(page) {
  const rows = page.releases.map((r) => el("tr", { "data-id": r.id, "data-outcome": r.outcome },
    el("td", {}, el("a", { href: `#/release/${r.id}` }, r.version || "—"),
      r.kind === "manual_rollback" ? el("div", { class: "muted" }, `manual rollback from ${r.rolled_back_version || "?"}`) : null),
    el("td", { class: "mono" }, short(r.commit)),
    el("td", {}, r.author || "—"),
    el("td", {}, r.approvers.join(", ") || "—"),
    el("td", {}, badge(r.outcome), r.emergency.length ? el("div", { class: "muted" }, `emergency: ${r.emergency.join(", ")}`) : null),
    el("td", {}, when(r.started_at)),
    el("td", {}, duration(r.duration_seconds)),
    el("td", {}, linkList(r.links))));
  return el("section", {}, el("h2", {}, `Releases (${page.total})`),
    el("table", { id: "releases-table" },
      el("thead", {}, el("tr", {}, ["version", "commit", "author", "approvers", "outcome", "started", "duration", "links"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
}

async function home() {
  for (;;) {
    const [live, page] = await Promise.all([getJSON("api/live"), getJSON("api/releases?limit=200")]);
    main.replaceChildren(liveSection(live));
    main.append(await doraSection(30));
    main.append(releasesTable(page));
    if (page.complete !== false || location.hash.startsWith("#/release/")) return;
    // A new API server answered from the runs' summaries alone; the runs without one (a release in
    // progress, older records) are being read in the background: show these, ask again shortly.
    main.append(el("p", { class: "muted", id: "incomplete" }, "Reading the runs without a summary (a release in progress, older records)…"));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (location.hash.startsWith("#/release/")) return;
  }
}

function gantt(bars) {
  if (!bars.length) return el("p", { class: "muted" }, "no phase has finished yet");
  const start = Math.min(...bars.map((b) => epoch(b.started_at)));
  const end = Math.max(...bars.map((b) => epoch(b.ended_at)));
  const span = Math.max(end - start, 1);
  return el("div", { class: "gantt", id: "timeline" }, bars.map((b) => {
    const left = ((epoch(b.started_at) - start) / span) * 100;
    const width = ((epoch(b.ended_at) - epoch(b.started_at)) / span) * 100;
    return el("div", { class: "row", "data-phase": b.phase },
      el("div", { class: "name" }, b.phase.replaceAll("_", " ")),
      el("div", { class: "track" }, el("div", { class: `bar ${b.phase.startsWith("rollback") ? "rollback" : ""}`,
        style: `left:${left}%;width:${width}%`, title: `${b.started_at} → ${b.ended_at}` })),
      el("div", { class: "secs" }, duration(b.seconds)));
  }));
}

function keyValues(rows) {
  return el("table", {}, el("tbody", {}, rows.filter(([, v]) => v !== undefined).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {}, v === null ? "—" : v)))));
}

function planSection(plan) {
  if (!plan) return el("p", { class: "muted" }, "no plan recorded");
  const changeSet = plan.change_set || {};
  const changes = changeSet.changes || [];
  return el("div", {},
    keyValues([["risk", plan.risk ? `${plan.risk.level}: ${(plan.risk.reasons || []).join("; ")}` : null],
      ["change set", changeSet.name || null], ["parameters", JSON.stringify(changeSet.parameters || {})],
      ["generated", when(plan.generated_at)]]),
    el("h3", {}, `Change-set preview (${changes.length} change${changes.length === 1 ? "" : "s"})`),
    changes.length ? el("table", { id: "change-set" }, el("thead", {}, el("tr", {}, ["action", "resource", "type", "replacement", "details"].map((h) => el("th", {}, h)))),
      el("tbody", {}, changes.map((c) => el("tr", {}, el("td", {}, c.action || c.Action || "—"),
        el("td", {}, c.logical_id || c.LogicalResourceId || "—"), el("td", {}, c.resource_type || c.ResourceType || "—"),
        el("td", {}, String(c.replacement ?? c.Replacement ?? "—")), el("td", { class: "mono" }, JSON.stringify(c.details || c.Details || c.scope || ""))))))
      : el("p", { class: "muted" }, "no resource changes (parameters only)"),
    el("h3", {}, "Steps"), el("ol", {}, (plan.steps || []).map((s) => el("li", {}, `${s.phase}: ${s.detail}`))),
    el("h3", {}, "Rollback plan"), el("ol", {}, (plan.rollback_plan || []).map((s) => el("li", {}, s))));
}

function aliasText(alias) {
  const shares = Object.entries(alias.weights || {});
  if (!shares.length) return `version ${alias.version} 100`;
  const moved = shares.reduce((sum, [, w]) => sum + w, 0);
  return [`version ${alias.version} ${Math.round((1 - moved) * 100)}`,
    ...shares.map(([v, w]) => `version ${v} ${Math.round(w * 100)}`)].join(" / ");
}

function apiVerdicts(watch) {
  const polls = watch.polls.filter((p) => p.api);
  if (!polls.length) return null;
  return el("table", { class: "api-verdicts" },
    el("thead", {}, el("tr", {}, ["poll", "API verdict", "new version", "errors", "previous", "p99"].map((h) => el("th", {}, h)))),
    el("tbody", {}, polls.map((p) => el("tr", {}, el("td", {}, when(p.at)), el("td", {}, badge(p.api.outcome)),
      el("td", {}, p.api.version ?? "—"), el("td", {}, p.api.error_rate_percent === null ? "—" : `${p.api.error_rate_percent} %`),
      el("td", {}, p.api.stable_error_rate_percent === null ? `v${p.api.previous_version}: —` : `v${p.api.previous_version}: ${p.api.stable_error_rate_percent} %`),
      el("td", {}, p.api.p99_ms === null ? "—" : `${p.api.p99_ms} ms`)))));
}

function watchSection(watch) {
  const breach = watch.polls.some((p) => p.outcome === "breach");
  const reasons = watch.polls.filter((p) => p.outcome !== "healthy").map((p) =>
    el("li", {}, `${when(p.at)}: ${p.outcome} — ${p.detail || ""}`));
  return el("div", { class: `watch ${breach ? "breach" : ""}`, "data-watch": watch.name },
    el("h3", {}, `${watch.name} `, badge(watch.outcome || (watch.skipped ? "skipped" : "—")),
      watch.weights ? el("span", { class: "muted" }, ` weights ${JSON.stringify(watch.weights)}`) : null,
      watch.api_weights ? el("span", { class: "muted api-weights" }, ` · API ${aliasText(watch.api_weights)}`) : null),
    el("div", { class: "reasons" }, watch.reason || "", reasons.length ? el("ul", {}, reasons) : null),
    watch.skipped ? el("p", { class: "muted" }, "skipped (emergency flag)")
      : watch.outcome === "applied" ? null : watchCharts(watch),
    apiVerdicts(watch),
    (watch.previous_attempts || []).length ? el("p", { class: "muted" },
      `${watch.previous_attempts.length} earlier attempt(s): ${watch.previous_attempts.map((a) => `${a.outcome} (${a.reason})`).join("; ")}`) : null);
}

function smokeSection(smoke) {
  if (!smoke.checks.length) return el("p", { class: "muted" }, "no smoke test ran");
  return el("table", { id: "smoke-tests" }, el("thead", {}, el("tr", {}, ["check", "result", "status", "latency", "colour", "detail"].map((h) => el("th", {}, h)))),
    el("tbody", {}, smoke.checks.map((c) => el("tr", {}, el("td", {}, c.name), el("td", {}, badge(c.ok ? "ok" : "failed")),
      el("td", {}, c.status ?? "—"), el("td", {}, c.latency_ms === undefined ? "—" : `${c.latency_ms} ms`), el("td", {}, c.colour || "—"),
      el("td", {}, c.error || c.detail || `${c.method || ""} ${c.path || ""}`)))));
}

function rollbackSection(rollback) {
  if (!rollback) return el("p", { class: "muted" }, "no rollback");
  return el("div", { id: "rollback" },
    keyValues([["status", badge(rollback.status)], ["verified", String(rollback.verified)],
      ["reasons", (rollback.reasons || []).join("; ") || "—"], ["undone", rollback.undone.join(", ") || "—"],
      ["not undone", rollback.not_undone.join(", ") || "—"]]),
    el("table", {}, el("thead", {}, el("tr", {}, ["step", "status", "started", "finished", "detail"].map((h) => el("th", {}, h)))),
      el("tbody", {}, [...rollback.steps].sort((a, b) => String(a.started_at).localeCompare(String(b.started_at))).map((s) => el("tr", { "data-step": s.name }, el("td", {}, s.name), el("td", {}, badge(s.status)),
        el("td", {}, when(s.started_at)), el("td", {}, when(s.finished_at)),
        el("td", { class: "mono" }, s.detail || (s.checks ? Object.entries(s.checks).map(([k, v]) => `${k}: ${v && v.ok ? "ok" : "FAILED"}`).join(", ") : "")))))));
}

async function release(id) {
  const r = await getJSON(`api/releases/${id}`);
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← all releases")),
    el("h2", { id: "release-title" }, `${r.kind === "manual_rollback" ? "Manual rollback to" : "Release"} ${r.version} `, badge(r.outcome)),
    keyValues([["commit", el("span", { class: "mono" }, r.commit || "—")], ["author", r.author || "—"],
      ["previous version", r.previous_version || "—"], ["started", when(r.started_at)], ["finished", when(r.finished_at)],
      ["duration", duration(r.duration_seconds)], ["links", linkList(r.links)],
      ["reason", r.reason || undefined]]),
    el("h2", {}, "Phases"), gantt(r.timeline),
    el("h2", {}, "Approvals"),
    r.approvals.length ? el("table", { id: "approvals" }, el("tbody", {}, r.approvals.map((a) =>
      el("tr", {}, el("td", {}, a.name || a.id), el("td", {}, when(a.at)), el("td", { class: "muted" }, a.task || ""))))) : el("p", { class: "muted" }, "none recorded"),
    el("h2", {}, "Plan"), planSection(r.plan),
    el("h2", {}, "Traffic steps and monitoring"),
    r.watches.length ? el("div", { id: "watches" }, r.watches.map(watchSection)) : el("p", { class: "muted" }, "traffic never moved"),
    el("h2", {}, "Smoke tests"), smokeSection(r.smoke_tests),
    el("h2", {}, "Rollback"), rollbackSection(r.rollback));
}

async function route() {
  const match = location.hash.match(/^#\/release\/(.+)$/);
  try {
    if (match) await release(match[1]);
    else await home();
    document.body.dataset.ready = "true";
  } catch (err) {
    main.replaceChildren(el("p", { class: "error" }, String(err)));
    document.body.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", () => { document.body.dataset.ready = "false"; route(); });
route();
