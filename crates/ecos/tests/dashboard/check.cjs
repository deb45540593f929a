// Loads the ecos dashboard in Chromium (Playwright), waits until the charts
// have rendered, reads back the numbers the page shows (KPI tiles and the
// data-* attributes of the SVG charts), saves a screenshot and prints what it
// read as one JSON line.
//
// node check.cjs URL PLAYWRIGHT_CORE_DIR CHROMIUM SCREENSHOT.png
"use strict";

const [url, pwDir, chromiumPath, shot] = process.argv.slice(2);
const { chromium } = require(pwDir);

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url, { waitUntil: "load" });
    await page.waitForSelector("body[data-rendered]", { timeout: 30000 });
    const seen = await page.evaluate(() => {
      const num = (v) => (v === null || v === "" ? null : Number(v));
      const sum = (sel, attr) => [...document.querySelectorAll(sel)].reduce((a, e) => a + Number(e.getAttribute(attr || "data-value")), 0);
      const kpis = {};
      for (const k of document.querySelectorAll("[data-kpi]")) {
        kpis[k.dataset.kpi] = { value: k.dataset.value, text: k.querySelector(".v").textContent };
      }
      const trafficSeries = {};
      for (const r of document.querySelectorAll('svg[data-chart="traffic"] rect[data-series]')) {
        trafficSeries[r.dataset.series] = (trafficSeries[r.dataset.series] || 0) + Number(r.dataset.value);
      }
      const reasons = {};
      for (const g of document.querySelectorAll('svg[data-chart="reasons"] g[data-reason]')) reasons[g.dataset.reason] = num(g.dataset.count);
      const users = {};
      for (const g of document.querySelectorAll('svg[data-chart="users"] g[data-user]')) {
        users[g.dataset.user] = { accepted: num(g.dataset.accepted), refused: num(g.dataset.refused) };
      }
      const states = {};
      for (const a of document.querySelectorAll('svg[data-chart="migration-state"] path[data-state]')) states[a.dataset.state] = num(a.dataset.value);
      const readiness = {};
      for (const g of document.querySelectorAll('svg[data-chart="readiness"] g[data-org]')) {
        readiness[g.dataset.org] = { pass: num(g.dataset.pass), fail: num(g.dataset.fail), rows: num(g.dataset.rows) };
      }
      const audit = document.getElementById("audit");
      return {
        title: document.title,
        error: document.body.dataset.error || null,
        kpis,
        traffic_series: trafficSeries,
        traffic_bars: document.querySelectorAll('svg[data-chart="traffic"] rect.bar').length,
        reasons,
        users,
        migration_states: states,
        migration_progress_bars: sum('svg[data-chart="migration-progress"] rect[data-series="migrated"]'),
        readiness,
        stages: [...document.querySelectorAll('svg[data-chart="stages"] g[data-stage]')].map((g) => g.dataset.stage),
        latency_points: document.querySelectorAll('svg[data-chart="latency"] circle').length,
        examples: document.querySelectorAll("#examples tbody tr[data-request]").length,
        audit: { state: audit.dataset.audit || null, entries: num(audit.dataset.entries) },
        audit_pill: document.getElementById("audit-pill").textContent,
      };
    });
    seen.page_errors = errors;
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
