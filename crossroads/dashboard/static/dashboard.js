// crossroads dashboard: plain JS, no build step, no third-party code.
// The admin key lives in this tab's sessionStorage and travels only as a bearer header on
// same-origin calls to the admin API; the page never puts it in a URL.
"use strict";
(() => {
  const API = "../v1/crossroads/admin/";
  const KEY = "crossroads.admin_key";
  const REFRESH_MS = 5000;
  const COLORS = ["#2457c5", "#e07b24", "#1f8a4c", "#c53030", "#7b4fc9", "#0f8b8d", "#b7791f", "#d6457d", "#6b7a90"];
  const $ = (selector) => document.querySelector(selector);
  const state = { settings: null, view: null, timer: null, cursor: null, paged: false };

  // ---------------------------------------------------------------- small helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // Like replaceChildren, but skips null and undefined (replaceChildren would print them).
  function put(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
    for (const child of children.flat()) if (child) el.append(child);
    return el;
  }

  const fmt = {
    num: (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })),
    ms: (v) => (v === null || v === undefined ? "–" : v >= 100 ? fmt.num(v, 0) : fmt.num(v, 1)),
    usdAxis: (v) => (v === 0 ? "$0" : Math.abs(v) < 0.01 ? "$" + v.toExponential(1) : fmt.usd(v)),
    usd: (v) => {
      if (v === null || v === undefined) return "–";
      const a = Math.abs(v);
      const digits = a === 0 ? 2 : a < 0.01 ? 6 : a < 1 ? 4 : 2;
      return (v < 0 ? "-$" : "$") + a.toFixed(digits);
    },
    pct: (v) => (v === null || v === undefined || !isFinite(v) ? "–" : (v * 100).toFixed(1) + "%"),
    time: (t) => new Date(t * 1000).toLocaleTimeString("en-GB", { hour12: false }),
    datetime: (t) => new Date(t * 1000).toLocaleString("en-GB", { hour12: false }),
    short: (v, n = 40) => { const s = v === null || v === undefined ? "" : String(v); return s.length > n ? s.slice(0, n - 1) + "…" : s; },
  };

  function badge(text, kind) { return h("span", { class: "badge " + (kind || ""), text }); }
  function statusBadge(status) { return badge(String(status), status < 400 ? "ok" : status < 500 ? "warn" : "bad"); }
  function card(label, value, note, extra) {
    return h("div", { class: "card" + (extra && extra.good ? " good" : ""), "data-kpi": extra && extra.id },
      h("div", { class: "label", text: label }),
      h("div", { class: "value", text: value, "data-value": extra && extra.raw !== undefined ? String(extra.raw) : null }),
      note ? h("div", { class: "note", text: note }) : null);
  }
  function table(head, rows, numeric) {
    return h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { class: numeric && numeric.includes(i) ? "num" : null, text: c })))),
      h("tbody", {}, rows)));
  }
  function cell(value, numeric) { return h("td", { class: numeric ? "num" : null }, value instanceof Node ? value : (value === null || value === undefined || value === "" ? "–" : String(value))); }

  // ---------------------------------------------------------------- the admin API

  class Unauthorized extends Error {}

  async function api(path, params) {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw new Unauthorized("signed out");
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined) query.set(k, v);
    const url = API + path + (query.toString() ? "?" + query : "");
    const response = await fetch(url, { headers: { authorization: "Bearer " + key }, credentials: "omit", cache: "no-store", redirect: "error" });
    if (response.status === 401) throw new Unauthorized("The admin key was refused.");
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return path.endsWith(".png") ? response.blob() : response.json();
  }

  function windowSeconds() { return Number($("#window").value); }

  // ---------------------------------------------------------------- charts (SVG)

  const W = 600, H = 190, PAD = { l: 46, r: 8, t: 8, b: 20 };

  function frame(t, ymax, yfmt) {
    const g = svg("g", {});
    const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
    for (const f of [0, 0.5, 1]) {
      const y = y0 - f * (y0 - y1);
      g.append(svg("line", { class: "grid", x1: x0, x2: x1, y1: y, y2: y }));
      g.append(svg("text", { x: x0 - 5, y: y + 3, "text-anchor": "end" }, document.createTextNode(yfmt(ymax * f))));
    }
    if (t.length) {
      for (const [i, anchor] of [[0, "start"], [Math.floor(t.length / 2), "middle"], [t.length - 1, "end"]]) {
        const x = x0 + ((i + 0.5) / t.length) * (x1 - x0);
        g.append(svg("text", { x, y: H - 5, "text-anchor": anchor }, document.createTextNode(fmt.time(t[i]))));
      }
    }
    return g;
  }

  function legend(names) {
    return h("div", { class: "legend" }, names.map((name, i) => {
      const swatch = h("i", {});
      swatch.dataset.color = i;
      return h("span", {}, swatch, name);
    }));
  }

  function paintLegend(el) {
    el.querySelectorAll(".legend i").forEach((i) => { i.style.background = COLORS[Number(i.dataset.color) % COLORS.length]; });
  }

  function lineChart(el, t, series, yfmt) {
    const values = series.flatMap((s) => s.values).filter((v) => v !== null);
    const ymax = Math.max(1e-12, ...values) * 1.1;
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" }, frame(t, ymax, yfmt));
    const x = (i) => PAD.l + ((i + 0.5) / Math.max(1, t.length)) * (W - PAD.l - PAD.r);
    const y = (v) => H - PAD.b - (v / ymax) * (H - PAD.b - PAD.t);
    series.forEach((s, k) => {
      let d = "";
      s.values.forEach((v, i) => { if (v !== null) d += (d && s.values[i - 1] !== null ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1); });
      chart.append(svg("path", { d: d || "M0 0", fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 2, "data-series": s.name }));
      s.values.forEach((v, i) => {
        if (v === null) return;
        chart.append(svg("circle", { cx: x(i), cy: y(v), r: 2.2, fill: COLORS[k % COLORS.length] },
          svg("title", {}, document.createTextNode(`${s.name} ${fmt.time(t[i])}: ${yfmt(v)}`))));
      });
    });
    put(el, chart, legend(series.map((s) => s.name)));
    paintLegend(el);
  }

  function stackChart(el, t, groups, yfmt) {
    const names = Object.keys(groups);
    const totals = t.map((_, i) => names.reduce((sum, n) => sum + groups[n][i], 0));
    const ymax = Math.max(1, ...totals) * 1.1;
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" }, frame(t, ymax, yfmt));
    const band = (W - PAD.l - PAD.r) / Math.max(1, t.length);
    const scale = (H - PAD.b - PAD.t) / ymax;
    t.forEach((ti, i) => {
      let base = H - PAD.b;
      names.forEach((name, k) => {
        const v = groups[name][i];
        if (!v) return;
        const height = v * scale;
        base -= height;
        chart.append(svg("rect", { x: PAD.l + i * band + band * 0.1, y: base, width: band * 0.8, height, fill: COLORS[k % COLORS.length] },
          svg("title", {}, document.createTextNode(`${name} ${fmt.time(ti)}: ${v}`))));
      });
    });
    put(el, chart, legend(names));
    paintLegend(el);
  }

  // ---------------------------------------------------------------- overview

  async function showOverview() {
    const s = await api("stats", { window: windowSeconds() });
    const sp = s.spend;
    const savedShare = sp.max_candidate > 0 ? sp.savings_vs_max_candidate / sp.max_candidate : null;
    const refShare = sp.reference ? sp.savings_vs_reference / sp.reference : null;
    put($("#kpis"),
      card("Requests", fmt.num(s.requests), s.truncated ? "newest " + fmt.num(s.requests) + " of the window" : "in the window", { id: "requests", raw: s.requests }),
      card("Rate", fmt.num(s.rate_per_s, 3) + " /s", "requests per second", { id: "rate", raw: s.rate_per_s }),
      card("Latency p50", fmt.ms(s.latency_ms.p50) + " ms", "p95 " + fmt.ms(s.latency_ms.p95) + " · p99 " + fmt.ms(s.latency_ms.p99) + " ms", { id: "p50", raw: s.latency_ms.p50 }),
      card("Errors", fmt.num(s.errors), s.requests ? fmt.pct(s.errors / s.requests) + " of requests" : "", { id: "errors", raw: s.errors }),
      card("Spend", fmt.usd(sp.actual), fmt.num(sp.priced_requests) + " priced requests", { id: "spend", raw: sp.actual }),
      card("Saved vs dearest candidate", fmt.usd(sp.savings_vs_max_candidate), fmt.pct(savedShare) + " of " + fmt.usd(sp.max_candidate), { id: "savings", raw: sp.savings_vs_max_candidate, good: sp.savings_vs_max_candidate > 0 }),
      sp.reference_model
        ? card("Saved vs " + sp.reference_model, fmt.usd(sp.savings_vs_reference), fmt.pct(refShare) + " of " + fmt.usd(sp.reference), { id: "savings-reference", raw: sp.savings_vs_reference, good: sp.savings_vs_reference > 0 })
        : card("Saved vs reference", "–", "set ui.reference_model", { id: "savings-reference" }),
    );
    const t = s.series.t;
    lineChart($("#chart-rate"), t, [{ name: "requests/s", values: s.series.rate_per_s }, { name: "errors/s", values: s.series.errors.map((n) => n / s.bucket_s) }], (v) => fmt.num(v, v < 10 ? 2 : 0));
    lineChart($("#chart-latency"), t, [{ name: "p50", values: s.series.p50_ms }, { name: "p95", values: s.series.p95_ms }], fmt.ms);
    stackChart($("#chart-decisions"), t, s.series.decisions, (v) => fmt.num(v));
    stackChart($("#chart-models"), t, s.series.models, (v) => fmt.num(v));
    const spend = [{ name: "actual", values: cumulative(s.series.cost) }, { name: "dearest candidate", values: cumulative(s.series.max_candidate_cost) }];
    if (sp.reference_model) spend.push({ name: sp.reference_model, values: cumulative(s.series.reference_cost) });
    lineChart($("#chart-spend"), t, spend, fmt.usdAxis);
    const share = (counts) => Object.entries(counts).map(([name, n]) => h("tr", {}, cell(name), cell(fmt.num(n), true), cell(fmt.pct(n / Math.max(1, s.requests)), true)));
    put($("#totals"),
      table(["decision", "requests", "share"], share(s.decisions), [1, 2]),
      h("div", { class: "muted", text: " " }),
      table(["model", "requests", "share"], share(s.models), [1, 2]));
  }

  function cumulative(values) { let sum = 0; return values.map((v) => (sum += v)); }

  // ---------------------------------------------------------------- traces

  function fillSelect(select, values) {
    const current = select.value;
    select.replaceChildren(h("option", { value: "", text: "any" }), ...values.map((v) => h("option", { value: v, text: v })));
    select.value = values.includes(current) ? current : "";
  }

  function filterParams() {
    const form = $("#filters");
    const params = { window: windowSeconds(), limit: 50 };
    for (const el of form.elements) if (el.name && el.value.trim()) params[el.name] = el.value.trim();
    return params;
  }

  function traceRow(r) {
    const saved = r.counterfactual ? r.counterfactual.max_candidate - r.counterfactual.actual : null;
    const tokens = r.prompt_tokens === null ? "–" : `${r.prompt_tokens}/${r.completion_tokens}`;
    return h("tr", { class: "pick", "data-trace": r.trace_id, onclick: () => { location.hash = "trace/" + r.trace_id; } },
      cell(fmt.time(r.created_at)), cell(h("code", { text: r.trace_id.slice(0, 14) })), cell(r.format), cell(fmt.short(r.requested_model, 24)),
      cell(r.model), cell(r.decision), cell(r.key_name), cell(tokens, true), cell(r.cost === null ? "–" : fmt.usd(r.cost), true),
      cell(saved === null ? "–" : fmt.usd(saved), true), cell(fmt.ms(r.latency_ms), true),
      cell(h("span", {}, statusBadge(r.status), r.error ? " " + fmt.short(r.error, 40) : "")));
  }

  async function showTraces(append) {
    const params = filterParams();
    if (append && state.cursor) params.cursor = state.cursor;
    const page = await api("traces", params);
    const body = $("#trace-table tbody");
    const rows = page.data.map(traceRow);
    if (append) body.append(...rows); else put(body, ...rows);
    state.cursor = page.next_cursor;
    $("#more").classList.toggle("hidden", !page.next_cursor);
    const shown = body.children.length;
    $("#trace-count").textContent = shown ? `${shown} trace${shown > 1 ? "s" : ""} shown` : "No trace matches these filters in the window.";
  }

  // ---------------------------------------------------------------- one trace

  async function showTrace(id) {
    const view = $("#view-trace");
    const t = await api("traces/" + encodeURIComponent(id));
    const route = t.route || {};
    const usage = t.usage;
    const cf = t.counterfactual;
    const path = route.rule_path || [];
    const signals = Object.values(route.signals || {});
    const attempts = t.attempts || [];
    const caller = t.caller || {};
    put(view,
      h("p", {}, h("a", { href: "#traces", text: "← traces" })),
      h("div", { class: "detail-head" },
        h("h1", {}, "Trace ", h("code", { text: t.trace_id })), statusBadge(t.status),
        h("span", { class: "muted", text: fmt.datetime(t.created_at) })),
      t.error ? h("p", { class: "error", text: t.error }) : null,
      h("div", { class: "cards" },
        card("Asked for", fmt.short(t.requested_model, 30), t.format + " · " + t.operation + (t.stream ? " · stream" : "")),
        card("Decision", route.decision || "–", route.selection ? "selection: " + route.selection : ""),
        card("Model", t.model || route.model || "–", t.upstream ? "endpoint " + t.upstream : ""),
        card("Latency", fmt.ms(t.latency_ms) + " ms", "first token " + fmt.ms(t.ttft_ms) + " ms · routing " + fmt.ms(route.routing_ms) + " ms"),
        card("Tokens", usage ? `${usage.prompt_tokens} / ${usage.completion_tokens}` : "–", usage ? "in / out" + (usage.estimated ? " (estimated)" : "") : ""),
        card("Cost", t.cost === null || t.cost === undefined ? "–" : fmt.usd(t.cost), "estimated " + fmt.usd(route.estimated_cost)),
        cf ? card("Saved vs dearest", fmt.usd(cf.max_candidate - cf.actual), `${cf.max_candidate_model}: ${fmt.usd(cf.max_candidate)}`, { id: "trace-savings", raw: cf.max_candidate - cf.actual, good: cf.max_candidate > cf.actual }) : null,
        cf && cf.reference !== null ? card("Saved vs " + cf.reference_model, fmt.usd(cf.reference - cf.actual), fmt.usd(cf.reference), { good: cf.reference > cf.actual }) : null),
      h("h2", { text: "Signals" }),
      signals.length
        ? table(["signal", "matched", "value", "detail", "ms", "error"], signals.map((s) => h("tr", {},
          cell(h("code", { text: s.name })), cell(badge(s.matched ? "true" : "false", s.matched ? "ok" : "")), cell(s.value === null ? "–" : String(s.value)),
          cell(fmt.short(s.detail, 80)), cell(fmt.num(s.elapsed_ms, 3), true), cell(s.error))), [4])
        : h("p", { class: "muted", text: route.decision === "explicit" ? "None: the request named a model, so no rule ran." : "No signal was computed." }),
      h("h2", { text: "Rules tried" }),
      path.length
        ? h("ol", { class: "path", id: "rule-path" }, path.map((step, i) => h("li", { class: i === path.length - 1 ? "matched" : null, text: step })))
        : h("p", { class: "muted", text: "No rule was tried." }),
      h("h2", { text: "Candidates" }),
      table(["model", "estimated cost", "eligible", "why not", "score", ""], (route.candidates || []).map((c) => h("tr", { class: c.model === route.model ? "highlight" : null },
        cell(c.model), cell(fmt.usd(c.estimated_cost), true), cell(badge(c.eligible ? "yes" : "no", c.eligible ? "ok" : "bad")), cell(c.reason),
        cell(c.score === null || c.score === undefined ? "–" : fmt.num(c.score, 4), true),
        cell(c.model === route.model ? "chosen" + (t.model && t.model !== route.model ? " (fell back)" : "") : c.model === t.model ? "answered" : ""))), [1, 4]),
      h("h2", { text: "Attempts" }),
      attempts.length
        ? table(["#", "at ms", "model", "endpoint", "outcome", "status", "latency ms", "error"], attempts.map((a, i) => h("tr", {},
          cell(i + 1, true), cell(fmt.ms(a.at_ms), true), cell(a.model), cell(a.upstream), cell(badge(a.outcome, a.outcome === "ok" ? "ok" : "bad")),
          cell(a.status), cell(fmt.ms(a.latency_ms), true), cell(fmt.short(a.error, 120)))), [0, 1, 6])
        : h("p", { class: "muted", text: "No upstream was called." }),
      h("h2", { text: "Caller" }),
      h("dl", { class: "kv" },
        h("dt", { text: "key" }), h("dd", { text: caller.key_name || "–" }),
        h("dt", { text: "team" }), h("dd", { text: caller.team || "–" }),
        h("dt", { text: "user" }), h("dd", { text: caller.user || "–" }),
        ...Object.entries(caller.headers || {}).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
      h("details", {}, h("summary", { text: "The whole trace (JSON)" }), h("pre", { class: "mono", text: JSON.stringify(t, null, 2) })),
    );
  }

  // ---------------------------------------------------------------- endpoints

  async function showEndpoints() {
    const e = await api("endpoints");
    const store = e.store;
    put($("#view-endpoints"),
      h("h2", { text: "Endpoints" }),
      table(["model", "endpoint", "circuit", "why", "in flight", "ttft ms", "ms/token", "served", "failed", "retry after s"],
        e.data.map((x) => h("tr", {}, cell(x.model), cell(h("code", { text: x.endpoint })), cell(badge(x.state, x.state)), cell(x.reason),
          cell(x.in_flight, true), cell(fmt.ms(x.ttft_ms), true), cell(fmt.ms(x.tpot_ms), true), cell(fmt.num(x.served), true),
          cell(fmt.num(x.failed), true), cell(x.retry_after_s ? fmt.num(x.retry_after_s, 1) : "–", true))), [4, 5, 6, 7, 8, 9]),
      h("h2", { text: "Trace store" }),
      h("div", { class: "cards" },
        card("Health", store.healthy ? "healthy" : "failing", store.writer_alive ? "writer running" : "writer stopped"),
        card("Written", fmt.num(store.written), "since start"),
        card("Queued", fmt.num(store.queued), "waiting for the writer"),
        card("Dropped", fmt.num(store.dropped), Object.entries(store.dropped_by_reason).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ") || "none")));
  }

  // ---------------------------------------------------------------- evaluation report

  const METRICS = [["aiq", "AIQ"], ["max_quality", "max quality"], ["quality_at_best_cost", "quality @ best-single cost"], ["cost_share_at_best_quality", "cost share @ best-single quality"], ["apgr", "APGR"], ["subst_auc", "substitution AUC"]];

  async function showEval() {
    const view = $("#view-eval");
    let report;
    try {
      report = await api("eval");
    } catch (error) {
      if (error.status !== 404) throw error;
      put(view, h("h2", { text: "Evaluation" }), h("p", { class: "muted", text: error.message }));
      return;
    }
    const served = report.served || [];
    const sections = [];
    for (const ds of report.datasets) {
      const mine = served.filter((s) => !s.dataset || s.dataset === ds.dataset).map((s) => s.router);
      const metricCols = METRICS.filter(([k]) => ds.routers.some((r) => r.metrics && k in r.metrics));
      const rows = [...ds.routers].sort((a, b) => (a.kind === "single") - (b.kind === "single") || b.metrics.aiq - a.metrics.aiq).map((r) => h("tr", { class: mine.includes(r.name) ? "highlight" : null },
        cell(r.name + (mine.includes(r.name) ? " (served)" : "") + (r.name === ds.selected_on_validation ? " (selected)" : "")), cell(r.kind),
        ...metricCols.map(([k]) => {
          const ci = (r.ci95 || {})[k];
          const v = r.metrics[k];
          return cell(v === null || v === undefined ? "–" : fmt.num(v, 3) + (ci ? ` [${fmt.num(ci[0], 3)}, ${fmt.num(ci[1], 3)}]` : ""), true);
        }),
        cell(r.fit_seconds === null ? "–" : fmt.num(r.fit_seconds, 2), true)));
      const img = h("img", { alt: `${ds.dataset}: cost-quality curves` });
      if (ds.plot) api("eval/" + ds.plot).then((blob) => { img.src = URL.createObjectURL(blob); }).catch(() => img.remove());
      sections.push(h("h2", { text: ds.dataset }),
        h("p", { class: "muted", text: `${ds.cost_note}; features: ${ds.features}; split: ${ds.split_rule}; best single model: ${ds.best_single}.` }),
        table(["router", "kind", ...metricCols.map(([, label]) => label), "fit s"], rows, metricCols.map((_, i) => i + 2)),
        ds.plot ? h("p", {}, img) : null);
    }
    put(view,
      h("h2", { text: "Latest evaluation report" }),
      h("p", { class: "muted", text: `${report.path}, written ${fmt.datetime(report.written_at)}. All numbers are on each dataset's test split, with 95% bootstrap intervals.` }),
      served.length ? h("p", {}, "Served: ", served.map((s) => `${s.router} (decision ${s.decision}, fitted on ${s.dataset || "?"})`).join("; ")) : h("p", { class: "muted", text: "No decision of this gateway serves a learned router." }),
      ...sections);
  }

  // ---------------------------------------------------------------- navigation

  const VIEWS = { overview: showOverview, traces: () => showTraces(false), endpoints: showEndpoints, eval: showEval };

  async function render() {
    const [name, arg] = (location.hash.slice(1) || "overview").split("/");
    const view = name === "trace" ? "trace" : VIEWS[name] ? name : "overview";
    state.view = view;
    document.querySelectorAll(".view").forEach((el) => el.classList.toggle("hidden", el.id !== "view-" + view));
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === (view === "trace" ? "traces" : view)));
    await refresh(arg);
  }

  async function refresh(arg) {
    clearTimeout(state.timer);
    try {
      if (state.view === "trace") await showTrace(decodeURIComponent(arg || ""));
      else if (state.view === "traces") { if (!state.paged) await showTraces(false); }
      else await VIEWS[state.view]();
      $("#updated").textContent = "updated " + fmt.time(Date.now() / 1000);
    } catch (error) {
      if (error instanceof Unauthorized) return signOut(error.message);
      $("#updated").textContent = "error: " + error.message;
      if (state.view === "trace") put($("#view-trace"), h("p", {}, h("a", { href: "#traces", text: "← traces" })), h("p", { class: "error", text: error.message }));
    }
    if (state.view !== "trace" && state.view !== "eval") state.timer = setTimeout(() => refresh(), REFRESH_MS);
  }

  // ---------------------------------------------------------------- session

  function signOut(message) {
    clearTimeout(state.timer);
    sessionStorage.removeItem(KEY);
    for (const id of ["#nav", "#session", "#footer"]) $(id).classList.add("hidden");
    document.querySelectorAll(".view").forEach((el) => el.classList.add("hidden"));
    $("#login").classList.remove("hidden");
    $("#login-error").textContent = message && message !== "signed out" ? message : "";
    $("#key").focus();
  }

  async function start() {
    let settings;
    try {
      settings = await api("settings");
    } catch (error) {
      if (error instanceof Unauthorized) return signOut(error.message);
      return signOut(error.message);
    }
    state.settings = settings;
    $("#login").classList.add("hidden");
    for (const id of ["#nav", "#session", "#footer"]) $(id).classList.remove("hidden");
    const form = $("#filters");
    fillSelect(form.elements.model, settings.models.map((m) => m.name));
    fillSelect(form.elements.decision, [...new Set([...settings.decisions, "explicit"])]);
    fillSelect(form.elements.key, settings.keys);
    fillSelect(form.elements.team, settings.teams);
    fillSelect(form.elements.format, settings.formats);
    $("#footer").textContent = `crossroads ${settings.version} · reference model: ${settings.reference_model || "none (ui.reference_model)"} · live, every ${REFRESH_MS / 1000} s`;
    await render();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key").value.trim();
      $("#key").value = "";
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      start();
    });
    $("#logout").addEventListener("click", () => signOut());
    $("#window").addEventListener("change", () => { state.paged = false; refresh(location.hash.split("/")[1]); });
    $("#filters").addEventListener("submit", (event) => { event.preventDefault(); state.paged = false; if (location.hash !== "#traces") location.hash = "traces"; else refresh(); });
    $("#filters").addEventListener("reset", () => { setTimeout(() => { state.paged = false; refresh(); }, 0); });
    $("#more").addEventListener("click", () => { state.paged = true; showTraces(true).catch((error) => { $("#updated").textContent = "error: " + error.message; }); });
    window.addEventListener("hashchange", () => { state.paged = false; render(); });
    if (sessionStorage.getItem(KEY)) start(); else signOut();
  });
})();
