// The ecos operations dashboard: fetches /api/dashboard/v1/* and draws SVG
// charts. No dependencies; every chart element carries data-* attributes
// with the numbers it shows.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const API = "/api/dashboard/v1/";
  const PALETTE = ["#2e9d5b", "#d1495b", "#edae49", "#00798c", "#8e6c8a", "#e07a5f",
    "#30638e", "#9c6644", "#6d597a", "#b5838d", "#3d405b", "#a3b18a"];
  const STATE_COLOURS = {
    "candidate": "#8fa7bf", "selected": "#7fb3e6", "sent": "#1f6feb", "migrated": "#2e9d5b",
    "retry-waiting": "#e6a23c", "failed-permanent": "#d1495b", "excluded": "#5b6472",
    "not-eligible": "#c9d1da", "paused": "#8e6c8a",
  };
  const STATE_ORDER = ["migrated", "sent", "selected", "candidate", "retry-waiting", "paused",
    "failed-permanent", "excluded", "not-eligible"];
  const REFRESH_MS = 10000;

  let range = sessionStorage.getItem("ecos-range") || "1h";
  let rendered = 0;
  const reasonColour = new Map();

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  function svg(tag, attrs, children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else e.setAttribute(k, String(v));
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  function title(text) { return svg("title", { text: text }); }

  function fmt(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    return Number(n).toLocaleString("en-GB");
  }

  function ms(n) {
    if (n === null || n === undefined) return "–";
    if (n >= 1000) return (n / 1000).toFixed(n >= 10000 ? 0 : 1) + " s";
    if (n >= 10) return n.toFixed(0) + " ms";
    return n.toFixed(1) + " ms";
  }

  function clock(t, withDate) {
    const d = new Date(t);
    const hm = d.toISOString().slice(11, 16);
    return withDate ? d.toISOString().slice(5, 10) + " " + hm : hm;
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function colourOfReason(reason) {
    if (!reasonColour.has(reason)) {
      reasonColour.set(reason, 1 + (reasonColour.size % (PALETTE.length - 1)));
    }
    return reasonColour.get(reason);
  }

  function clear(id) {
    const c = document.getElementById(id);
    while (c.firstChild) c.removeChild(c.firstChild);
    return c;
  }

  function empty(id, text) {
    clear(id).appendChild(el("div", { class: "empty", text: text }));
  }

  function legend(id, items) {
    const c = clear(id);
    for (const it of items) {
      c.appendChild(el("span", { "data-legend": it.key }, [el("i", { class: it.cls }), el("span", { text: it.label })]));
    }
  }

  // ---------------------------------------------------------------- charts

  // Vertical stacked bars over time. buckets: [{start, segs: [{key, value, colour, label}]}]
  // The width of a chart's container in pixels (charts are drawn 1:1).
  function widthOf(id, fallback) {
    const w = document.getElementById(id).clientWidth;
    return w > 200 ? Math.floor(w) : fallback;
  }

  function stackedBars(id, buckets, opts) {
    const W = widthOf(id, opts.width || 1100), H = opts.height || 240;
    const m = { l: 44, r: 12, t: 10, b: 26 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const totals = buckets.map((b) => b.segs.reduce((a, s) => a + s.value, 0));
    const max = niceMax(Math.max(0, ...totals));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label, "data-chart": opts.name });
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, y = m.t + ph - (ph * i) / 4;
      grid.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: y, y2: y }));
      axis.appendChild(svg("text", { x: m.l - 6, y: y + 3, "text-anchor": "end", text: fmt(Math.round(v * 100) / 100) }));
    }
    root.appendChild(grid);
    const n = Math.max(1, buckets.length);
    const step = pw / n, bw = Math.max(1, step * 0.78);
    const span = buckets.length ? new Date(buckets[buckets.length - 1].start) - new Date(buckets[0].start) : 0;
    const withDate = span > 20 * 3600 * 1000;
    const every = Math.max(1, Math.ceil(n / 8));
    buckets.forEach((b, i) => {
      const x = m.l + i * step + (step - bw) / 2;
      let y = m.t + ph;
      const g = svg("g", { "data-bucket": i, "data-start": b.start, "data-total": totals[i] });
      for (const s of b.segs) {
        if (s.value <= 0) continue;
        const h = (ph * s.value) / max;
        y -= h;
        g.appendChild(svg("rect", {
          class: "bar", x: x.toFixed(2), y: y.toFixed(2), width: bw.toFixed(2), height: Math.max(0.5, h).toFixed(2),
          fill: s.colour, rx: Math.min(2, bw / 4), "data-series": s.key, "data-value": s.value,
        }, [title(`${clock(b.start, true)}  ${s.label}: ${fmt(s.value)}`)]));
      }
      root.appendChild(g);
      if (i % every === 0) {
        axis.appendChild(svg("text", { x: (m.l + i * step + step / 2).toFixed(1), y: H - 8, "text-anchor": "middle", text: clock(b.start, withDate) }));
      }
    });
    axis.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
    root.appendChild(axis);
    clear(id).appendChild(root);
  }

  // Horizontal bars. rows: [{label, sub, attrs, segs: [{key, value, colour, label}]}]
  function hbars(id, rows, opts) {
    const W = widthOf(id, opts.width || 520), rowH = 30;
    const labelW = Math.min(opts.labelW || 170, Math.floor(W * 0.4));
    const H = rows.length * rowH + 8;
    const totals = rows.map((r) => r.segs.reduce((a, s) => a + s.value, 0));
    const max = Math.max(1, ...totals);
    const pw = Math.max(40, W - labelW - (opts.valueW || 40));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label, "data-chart": opts.name });
    rows.forEach((r, i) => {
      const y = 4 + i * rowH;
      const g = svg("g", Object.assign({ "data-total": totals[i] }, r.attrs || {}));
      g.appendChild(svg("text", { class: "label", x: 0, y: y + 13, text: r.label }));
      if (r.sub) g.appendChild(svg("text", { x: 0, y: y + 25, "font-size": 9, text: r.sub }));
      g.appendChild(svg("rect", { x: labelW, y: y + 4, width: pw, height: 16, rx: 3, fill: "#f1f4f7" }));
      let x = labelW;
      for (const s of r.segs) {
        if (s.value <= 0) continue;
        const w = (pw * s.value) / max;
        g.appendChild(svg("rect", {
          class: "bar", x: x.toFixed(2), y: y + 4, width: Math.max(1, w).toFixed(2), height: 16, rx: 3,
          fill: s.colour, "data-series": s.key, "data-value": s.value,
        }, [title(`${r.label}  ${s.label}: ${fmt(s.value)}`)]));
        x += w;
      }
      g.appendChild(svg("text", { class: "value", x: x + 6, y: y + 16, text: r.valueText || fmt(totals[i]) }));
      root.appendChild(g);
    });
    clear(id).appendChild(root);
  }

  // Lines over time. series: [{key, label, colour, points: [[t, y]]}]
  function lines(id, series, opts) {
    const W = widthOf(id, opts.width || 520), H = opts.height || 180;
    const m = { l: 52, r: 10, t: 10, b: 24 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const pts = series.flatMap((s) => s.points);
    if (!pts.length) return empty(id, opts.none || "no data in this window");
    const t0 = opts.from, t1 = opts.to;
    const max = niceMax(Math.max(...pts.map((p) => p[1])));
    const X = (t) => m.l + (pw * (t - t0)) / Math.max(1, t1 - t0);
    const Y = (v) => m.t + ph - (ph * v) / max;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label, "data-chart": opts.name });
    const grid = svg("g", { class: "grid" }), axis = svg("g", { class: "axis" });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      grid.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
      axis.appendChild(svg("text", { x: m.l - 6, y: Y(v) + 3, "text-anchor": "end", text: opts.yfmt(v) }));
    }
    const withDate = t1 - t0 > 20 * 3600 * 1000;
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4;
      axis.appendChild(svg("text", { x: X(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", text: clock(t, withDate) }));
    }
    root.appendChild(grid);
    root.appendChild(axis);
    for (const s of series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
      const g = svg("g", { "data-series": s.key });
      if (s.area) {
        const a = d + ` L${X(s.points[s.points.length - 1][0]).toFixed(1)},${Y(0)} L${X(s.points[0][0]).toFixed(1)},${Y(0)} Z`;
        g.appendChild(svg("path", { d: a, fill: s.colour, "fill-opacity": 0.12, stroke: "none" }));
      }
      g.appendChild(svg("path", { d: d, fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-linejoin": "round" }));
      for (const p of s.points) {
        g.appendChild(svg("circle", { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 3, fill: s.colour, "data-value": p[1] },
          [title(`${clock(p[0], true)}  ${s.label}: ${opts.yfmt(p[1])}`)]));
      }
      root.appendChild(g);
    }
    clear(id).appendChild(root);
  }

  // A ring of parts with the total in the middle. parts: [{key, label, value, colour}]
  function donut(id, parts, opts) {
    const W = Math.max(300, widthOf(id, 520)), H = Math.max(200, 26 + parts.length * 19), cx = 100, cy = 100, R = 84, r = 54;
    const total = parts.reduce((a, p) => a + p.value, 0);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label, "data-chart": opts.name, "data-total": total });
    let a0 = -Math.PI / 2;
    const shown = parts.filter((p) => p.value > 0);
    for (const p of shown) {
      const frac = p.value / total;
      const a1 = a0 + frac * 2 * Math.PI;
      let d;
      if (shown.length === 1) {
        d = `M${cx},${cy - R} A${R},${R} 0 1 1 ${cx - 0.01},${cy - R} L${cx - 0.01},${cy - r} A${r},${r} 0 1 0 ${cx},${cy - r} Z`;
      } else {
        const big = a1 - a0 > Math.PI ? 1 : 0;
        const P = (rad, a) => `${(cx + rad * Math.cos(a)).toFixed(2)},${(cy + rad * Math.sin(a)).toFixed(2)}`;
        d = `M${P(R, a0)} A${R},${R} 0 ${big} 1 ${P(R, a1)} L${P(r, a1)} A${r},${r} 0 ${big} 0 ${P(r, a0)} Z`;
      }
      root.appendChild(svg("path", { class: "arc", d: d, fill: p.colour, "data-state": p.key, "data-value": p.value },
        [title(`${p.label}: ${fmt(p.value)} (${(100 * frac).toFixed(1)}%)`)]));
      a0 = a1;
    }
    root.appendChild(svg("text", { class: "center", x: cx, y: cy + 4, "text-anchor": "middle", text: fmt(total) }));
    root.appendChild(svg("text", { class: "center-sub", x: cx, y: cy + 20, "text-anchor": "middle", text: opts.unit }));
    parts.forEach((p, i) => {
      const y = 22 + i * 19;
      root.appendChild(svg("rect", { x: 222, y: y - 9, width: 11, height: 11, rx: 3, fill: p.colour }));
      root.appendChild(svg("text", { class: "label", x: 240, y: y, text: p.label }));
      root.appendChild(svg("text", { class: "value", x: W - 8, y: y, "text-anchor": "end", text: fmt(p.value) }));
    });
    clear(id).appendChild(root);
  }

  // ---------------------------------------------------------------- data

  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem("ecos-token");
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch(API + path, { headers: headers });
    if (r.status === 401) {
      document.getElementById("login").hidden = false;
      throw new Error("the admin token is needed");
    }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function kpi(key, label, value, sub, tone) {
    return el("div", { class: "kpi " + (tone || ""), "data-kpi": key, "data-value": value === null ? "" : String(value) },
      [el("div", { class: "v", text: typeof value === "number" ? fmt(value) : (value || "–") }),
        el("div", { class: "l", text: label }),
        el("div", { class: "s", text: sub || "" })]);
  }

  function renderKpis(ov, lat, mig) {
    const c = clear("kpis");
    const rate = ov.acceptance_rate;
    const rt = lat.device_round_trip.overall;
    const out = ov.outbound || { undelivered: 0, parked: 0 };
    const total = mig.counts ? Object.values(mig.counts.by_state).reduce((a, b) => a + b, 0) : 0;
    const migrated = mig.counts ? (mig.counts.by_state["migrated"] || 0) : 0;
    c.appendChild(kpi("accepted", "accepted", ov.accepted, "6.23 requests in the window", "good"));
    c.appendChild(kpi("refused", "refused", ov.refused, `${ov.reasons} reason${ov.reasons === 1 ? "" : "s"} · ${ov.service_users} service user${ov.service_users === 1 ? "" : "s"}`, ov.refused ? "bad" : "good"));
    c.appendChild(kpi("acceptance", "acceptance rate", rate === null ? "–" : (100 * rate).toFixed(1) + "%", "accepted ÷ decided", rate !== null && rate < 0.5 ? "warn" : "good"));
    c.appendChild(kpi("round-trip", "device round trip p50", rt ? ms(rt.p50_ms) : "–", rt ? `p95 ${ms(rt.p95_ms)} · ${fmt(rt.count)} answered` : "no answered command", ""));
    c.appendChild(kpi("migrated", "migrated to ECoS", migrated, total ? `of ${fmt(total)} tracked (${(100 * migrated / total).toFixed(0)}%)` : "no device tracked yet", "good"));
    c.appendChild(kpi("delivery", "delivery backlog", out.undelivered, `${fmt(out.parked)} parked`, out.parked ? "bad" : out.undelivered ? "warn" : "good"));
  }

  function renderTraffic(t) {
    const reasons = new Set();
    t.buckets.forEach((b) => Object.keys(b.refused_by_reason).forEach((r) => reasons.add(r)));
    const sorted = [...reasons].sort();
    sorted.forEach(colourOfReason);
    const buckets = t.buckets.map((b) => ({
      start: b.start,
      segs: [{ key: "accepted", value: b.accepted, colour: PALETTE[0], label: "accepted" }].concat(
        sorted.map((r) => ({ key: r, value: b.refused_by_reason[r] || 0, colour: PALETTE[colourOfReason(r)], label: "refused: " + r }))),
    }));
    stackedBars("chart-traffic", buckets, { name: "traffic", label: "decisions per bucket" });
    legend("legend-traffic", [{ key: "accepted", cls: "c0", label: "accepted" }].concat(
      sorted.map((r) => ({ key: r, cls: "c" + colourOfReason(r), label: r.replace(/_/g, " ") }))));
    const bucket = t.bucket_secs >= 3600 ? (t.bucket_secs / 3600) + " h" : t.bucket_secs >= 60 ? (t.bucket_secs / 60) + " min" : t.bucket_secs + " s";
    document.getElementById("traffic-hint").textContent = `decisions per ${bucket}, accepted and refused by reason`;
  }

  function renderFailures(f) {
    if (!f.by_reason.length) empty("chart-reasons", "no refusals in this window");
    else hbars("chart-reasons", f.by_reason.map((g) => ({
      label: g.reason.replace(/_/g, " "),
      sub: `${g.check || "?"} · ${g.response_code || "?"} · ${g.service_users} user${g.service_users === 1 ? "" : "s"}`,
      attrs: { "data-reason": g.reason, "data-count": g.count },
      segs: [{ key: g.reason, value: g.count, colour: PALETTE[colourOfReason(g.reason)], label: "refused" }],
    })), { name: "reasons", label: "refusals by reason" });
    if (!f.by_service_user.length) empty("chart-users", "no decisions in this window");
    else hbars("chart-users", f.by_service_user.map((u) => ({
      label: u.name || u.service_user,
      sub: u.name ? u.service_user : "",
      attrs: { "data-user": u.service_user, "data-accepted": u.accepted, "data-refused": u.refused },
      valueText: `${fmt(u.accepted)} ✓  ${fmt(u.refused)} ✗`,
      segs: [{ key: "accepted", value: u.accepted, colour: PALETTE[0], label: "accepted" },
        { key: "refused", value: u.refused, colour: PALETTE[1], label: "refused" }],
    })), { name: "users", label: "decisions by service user", labelW: 170, valueW: 70 });
    const tbody = document.querySelector("#examples tbody");
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    const ex = f.by_reason.flatMap((g) => g.examples).sort((a, b) => b.seq - a.seq).slice(0, 12);
    if (!ex.length) {
      tbody.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "muted", text: "no refusals in this window" })]));
    }
    for (const e of ex) {
      const tag = el("span", { class: "tag", text: e.reason.replace(/_/g, " ") });
      tag.style.background = PALETTE[colourOfReason(e.reason)];
      tbody.appendChild(el("tr", { "data-request": e.request_id, "data-reason": e.reason }, [
        el("td", { class: "mono", text: e.at.slice(0, 19).replace("T", " ") }),
        el("td", {}, [tag]),
        el("td", { class: "mono", text: e.response_code || "" }),
        el("td", { class: "mono", text: e.service_user }),
        el("td", { class: "mono", text: e.request_id }),
        el("td", { class: "ev", text: e.message }),
      ]));
    }
  }

  function renderLatency(l, window) {
    const rt = l.device_round_trip;
    const from = new Date(window.since).getTime(), to = new Date(window.until).getTime();
    const step = rt.bucket_secs * 1000 / 2;
    lines("chart-latency", [
      { key: "p50", label: "p50", colour: "#1f6feb", area: true, points: rt.buckets.map((b) => [new Date(b[0]).getTime() + step, b[1].p50_ms]) },
      { key: "p95", label: "p95", colour: "#e07a5f", points: rt.buckets.map((b) => [new Date(b[0]).getTime() + step, b[1].p95_ms]) },
    ], { name: "latency", label: "device round trip", from: from, to: to, yfmt: ms, none: "no device answers in this window" });
    const stages = Object.entries(l.http_stages || {});
    const order = ["admission", "receive", "process", "total", "delivery"];
    stages.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
    if (!stages.length) empty("chart-stages", "no HTTP requests since start");
    else hbars("chart-stages", stages.map(([name, s]) => ({
      label: name,
      sub: `${fmt(s.count)} requests`,
      attrs: { "data-stage": name, "data-count": s.count },
      valueText: `p50 ${ms(s.p50_ms)} · p95 ${ms(s.p95_ms)}`,
      segs: [{ key: "p50", value: s.p50_ms, colour: "#1f6feb", label: "p50 ms" },
        { key: "p95", value: Math.max(0, s.p95_ms - s.p50_ms), colour: "#9dbcf0", label: "p95 − p50 ms" }],
    })), { name: "stages", label: "HTTP stage latency", labelW: 90, valueW: 150 });
  }

  function renderMigration(m) {
    const by = m.counts.by_state;
    const states = STATE_ORDER.filter((s) => s in by).concat(Object.keys(by).filter((s) => !STATE_ORDER.includes(s)));
    if (!states.length) empty("chart-migration-state", "no device tracked by the migration yet");
    else donut("chart-migration-state", states.map((s) => ({ key: s, label: s.replace(/-/g, " "), value: by[s], colour: STATE_COLOURS[s] || "#999" })),
      { name: "migration-state", label: "devices by migration state", unit: "devices" });
    const regions = Object.entries(m.counts.by_region);
    if (!regions.length) empty("chart-migration-region", "no regions yet");
    else hbars("chart-migration-region", regions.map(([region, st]) => ({
      label: region === "-" ? "(no region)" : region,
      attrs: { "data-region": region },
      segs: states.map((s) => ({ key: s, value: st[s] || 0, colour: STATE_COLOURS[s] || "#999", label: s })),
    })), { name: "migration-region", label: "devices by region and state", labelW: 90 });

    const p = m.progress;
    if (!p) {
      empty("chart-migration-progress", "the migration has not started (no transition recorded)");
      legend("legend-migration", []);
      document.getElementById("migration-hint").textContent = "";
    } else {
      const keys = ["sent", "migrated", "retry-waiting", "failed-permanent", "excluded"];
      stackedBars("chart-migration-progress", p.buckets.map((b) => ({
        start: b.start,
        segs: keys.map((k) => ({ key: k, value: b.entered[k] || 0, colour: STATE_COLOURS[k], label: "entered " + k })),
      })), { name: "migration-progress", label: "migration transitions per bucket", width: 760, height: 200 });
      const last = p.buckets.length ? p.buckets[p.buckets.length - 1].migrated_total : 0;
      legend("legend-migration", keys.map((k) => ({ key: k, cls: "s-" + k, label: "→ " + k.replace(/-/g, " ") })));
      document.getElementById("migration-hint").textContent =
        `transitions per ${p.bucket_secs >= 60 ? p.bucket_secs / 60 + " min" : p.bucket_secs + " s"} · ${fmt(last)} migrated by ${clock(p.window.until, true)}`;
    }
    const b = m.retry_backlog, d = m.delivery_backlog || { undelivered: 0, parked: 0 };
    const c = clear("backlog");
    const box = (k, v, l) => el("div", { class: "b", "data-backlog": k, "data-value": v }, [el("div", { class: "v", text: fmt(v) }), el("div", { class: "l", text: l })]);
    c.appendChild(box("migration-waiting", b.waiting, "migration retries waiting"));
    c.appendChild(box("migration-due", b.due, "of which due now"));
    c.appendChild(box("delivery-undelivered", d.undelivered, "responses undelivered"));
    c.appendChild(box("delivery-parked", d.parked, "responses parked"));
    const classes = Object.entries(b.by_class).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ");
    c.appendChild(el("div", { class: "classes", text: classes ? "by failure class: " + classes + (b.next_at ? ` · next ${clock(b.next_at, true)}` : "") : "no migration retry waiting" }));
  }

  function renderReadiness(r) {
    if (!r.available) return empty("chart-readiness", r.why);
    const users = r.users;
    if (!users.length) return empty("chart-readiness", "no service users");
    hbars("chart-readiness", users.map((u) => {
      const sc = Object.entries(u.scenarios || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
      return {
        label: u.name || u.org,
        sub: u.error ? u.error : `${u.org} · ${fmt(u.mpxns)} MPxN${u.mpxns === 1 ? "" : "s"}${sc ? " · " + sc : ""}`,
        attrs: { "data-org": u.org, "data-pass": u.pass_today || 0, "data-fail": u.fail_today || 0, "data-rows": u.rows || 0 },
        valueText: u.error ? "–" : `${fmt(u.pass_today)} pass · ${fmt(u.fail_today)} fail` + (u.with_switch ? ` · switch ${fmt(u.pass_on_switch)}/${fmt(u.with_switch)}` : ""),
        segs: [{ key: "pass", value: u.pass_today || 0, colour: PALETTE[0], label: "pass today" },
          { key: "fail", value: u.fail_today || 0, colour: PALETTE[1], label: "fail today" }],
      };
    }), { name: "readiness", label: "readiness by service user", width: 1100, labelW: 430, valueW: 230 });
  }

  function renderAudit(a) {
    const c = clear("audit");
    const pill = document.getElementById("audit-pill");
    if (a.error) {
      c.appendChild(el("div", { class: "big", text: "cannot verify: " + a.error }));
      pill.className = "pill bad";
      pill.textContent = "audit chain: error";
      return;
    }
    c.setAttribute("data-audit", a.intact ? "intact" : "broken");
    c.setAttribute("data-entries", a.entries);
    c.appendChild(el("div", { class: "state" }, [
      el("div", { class: "dot " + (a.intact ? "ok" : "bad"), text: a.intact ? "✓" : "!" }),
      el("div", {}, [el("div", { class: "big", text: a.intact ? "Chain verified" : "Chain BROKEN" }),
        el("div", { class: "muted", text: `${fmt(a.entries)} hash-chained entries` })]),
    ]));
    if (a.first_broken) c.appendChild(el("div", { class: "big", text: a.first_broken }));
    c.appendChild(el("div", { class: "muted", text: "head (SHA-256)" }));
    c.appendChild(el("div", { class: "head", text: a.head }));
    c.appendChild(el("div", { class: "muted", text: "checked " + a.checked_at.slice(0, 19).replace("T", " ") + " UTC" }));
    pill.className = "pill " + (a.intact ? "ok" : "bad");
    pill.textContent = a.intact ? `audit chain verified · ${fmt(a.entries)}` : "audit chain BROKEN";
  }

  async function refresh() {
    const q = "?since=" + encodeURIComponent(range);
    try {
      const [ov, tr, fa, la, mi, re, au] = await Promise.all([
        api("overview" + q), api("traffic" + q), api("failures" + q + "&examples=4"), api("latency" + q),
        api("migration"), api("readiness"), api("audit"),
      ]);
      renderKpis(ov, la, mi);
      renderTraffic(tr);
      renderFailures(fa);
      renderLatency(la, tr.window);
      renderMigration(mi);
      renderReadiness(re);
      renderAudit(au);
      rendered += 1;
      document.body.setAttribute("data-rendered", String(rendered));
      document.body.setAttribute("data-range", range);
      document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      document.getElementById("footer").textContent = `ecos ${ov.version} · ${ov.backend} store · up ${Math.floor(ov.uptime_secs / 60)} min · window ${ov.window.since.slice(0, 16).replace("T", " ")} – ${ov.window.until.slice(0, 16).replace("T", " ")} UTC`;
    } catch (e) {
      document.getElementById("updated").textContent = "not updated: " + e.message;
      document.body.setAttribute("data-error", e.message);
    }
  }

  function setRange(r) {
    range = r;
    sessionStorage.setItem("ecos-range", r);
    for (const b of document.querySelectorAll("#range button")) b.classList.toggle("on", b.dataset.range === r);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const fromUrl = new URLSearchParams(location.search).get("range");
    if (fromUrl) range = fromUrl;
    for (const b of document.querySelectorAll("#range button")) b.addEventListener("click", () => setRange(b.dataset.range));
    document.getElementById("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("ecos-token", document.getElementById("login-token").value.trim());
      document.getElementById("login").hidden = true;
      refresh();
    });
    setRange(range);
    setInterval(refresh, REFRESH_MS);
  });
})();
