// The console's end-to-end suite: a real Chromium (Debian's, through
// playwright-core) against `rosetta dev` started by web/console_e2e_test.go,
// which also passes the tokens and the databases. Every page gets a
// screenshot (SCREENSHOT_DIR) and an axe-core check: a serious or critical
// violation fails the suite.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set: run this suite through go test ./web/ (TestConsoleInChromium)`);
  return v;
};
const url = env("CONSOLE_URL");
const adminToken = env("ADMIN_TOKEN");
const viewerToken = env("VIEWER_TOKEN");
const shots = env("SCREENSHOT_DIR");
const pg = { host: env("PG_HOST"), port: env("PG_PORT"), source: env("SOURCE_DB"), dest: env("DEST_DB") };
const require = createRequire(import.meta.url);
const axePath = require.resolve("axe-core/axe.min.js");
mkdirSync(shots, { recursive: true });

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function psql(db, sql) {
  return execFileSync(env("PSQL"), ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", pg.host, "-p", pg.port, "-U", "postgres", "-d", db, "-c", sql], {
    encoding: "utf8",
  }).trim();
}

// eventually retries fn until it stops throwing, for at most ms.
async function eventually(what, fn, ms = 60_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await sleep(500);
    }
  }
  throw new Error(`${what}: not true after ${ms / 1000}s: ${last?.message ?? last}`);
}

const violations = [];
async function check(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await page.addScriptTag({ path: axePath });
  const res = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of res.violations) {
    if (v.impact === "serious" || v.impact === "critical") {
      violations.push(`${name}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
    }
  }
  log(`page ${name}: screenshot and axe (${res.violations.length} violations of any impact)`);
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let writer;
try {
  // bypassCSP lets axe-core be injected; the console itself runs under the
  // server's Content-Security-Policy.
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, bypassCSP: true });
  // Nothing outside the Rosetta API: any other host is a failure.
  const foreign = [];
  await context.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.origin !== new URL(url).origin && u.protocol !== "data:") {
      foreign.push(u.href);
      return route.abort();
    }
    return route.continue();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const dialog = () => page.getByRole("dialog");

  // --- sign in -----------------------------------------------------------
  await page.goto(url + "/pipelines");
  await page.getByRole("heading", { name: "Rosetta console" }).waitFor();
  await check(page, "01-sign-in");
  await page.getByLabel("API token").fill("rst_not-a-real-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("The API refused this token").waitFor();
  log("a wrong token is refused with a message at the field");
  await page.getByLabel("API token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Pipelines" }).waitFor();
  log("signed in as admin; back on the page asked for first");

  // --- source: the API's field error, then created ---------------------
  await page.getByRole("link", { name: "Sources" }).click();
  await page.getByRole("button", { name: "New source" }).click();
  const d = dialog();
  await d.getByLabel("Name").fill("shop");
  await d.getByLabel("Host").fill(pg.host);
  await d.getByLabel("Port").fill(pg.port);
  await d.getByLabel("Database").fill("no_such_database");
  await d.getByLabel("User").fill("postgres");
  await d.getByLabel("SSL mode").selectOption("disable");
  await d.getByRole("button", { name: "Create source" }).click();
  const dbField = d.getByLabel("Database");
  await eventually("the API's error at the Database field", async () => {
    if ((await dbField.getAttribute("aria-invalid")) !== "true") throw new Error("Database is not marked invalid");
  });
  const described = await dbField.getAttribute("aria-describedby");
  const fieldMsg = await page.locator(`[id="${described}"]`).innerText();
  if (!fieldMsg.includes("no_such_database")) throw new Error(`the Database field says ${JSON.stringify(fieldMsg)}, not the API's message`);
  log(`invalid source: the API's message is at the Database field: ${fieldMsg}`);
  await check(page, "02-source-field-error");
  await d.getByLabel("Database").fill(pg.source);
  await d.getByRole("button", { name: "Create source" }).click();
  await d.waitFor({ state: "detached" });
  await page.getByRole("cell", { name: "shop", exact: true }).waitFor();
  await check(page, "03-sources");

  // --- destinations: DuckDB and PostgreSQL, each tested first -----------
  await page.getByRole("link", { name: "Destinations" }).click();
  await page.getByRole("button", { name: "New destination" }).click();
  await d.getByLabel("Type").selectOption("duckdb");
  await d.getByLabel("Name").fill("analytics");
  await d.getByLabel("path *").fill(env("DUCKDB_PATH"));
  await d.getByLabel("release_after").fill("200ms");
  await d.getByRole("button", { name: "Test connection" }).click();
  await d.getByText("The config is valid").waitFor();
  await d.getByRole("button", { name: "Create destination" }).click();
  await d.waitFor({ state: "detached" });
  await page.getByRole("button", { name: "New destination" }).click();
  await d.getByLabel("Type").selectOption("postgres");
  await d.getByLabel("Name").fill("warehouse");
  await d.getByLabel("host *").fill(pg.host);
  await d.getByLabel("port", { exact: true }).fill(pg.port);
  await d.getByLabel("database *").fill(pg.dest);
  await d.getByLabel("user *").fill("postgres");
  await d.getByLabel("sslmode").selectOption("disable");
  await d.getByRole("button", { name: "Test connection" }).click();
  await d.getByText("Connection works").waitFor();
  await check(page, "04-destination-form");
  await d.getByRole("button", { name: "Create destination" }).click();
  await d.waitFor({ state: "detached" });
  await page.getByRole("cell", { name: "warehouse", exact: true }).waitFor();
  await check(page, "05-destinations");

  // --- pipeline through the form and the table picker -------------------
  await page.getByRole("link", { name: "Pipelines" }).click();
  await page.getByRole("button", { name: "New pipeline" }).click();
  await d.getByLabel("Name").fill("shop-pipeline");
  await d.getByLabel("Source").selectOption({ label: "shop" });
  await d.getByText("public.events has no primary key").waitFor();
  if (!(await d.getByLabel("Replicate public.events").isDisabled())) throw new Error("a table without a key can be picked");
  await d.getByText("primary key (id)").first().waitFor();
  await d.getByLabel("Replicate public.customers").check();
  await d.getByLabel("Replicate public.orders").check();
  await d.getByLabel("analytics").check();
  await d.getByLabel("warehouse").check();
  await check(page, "06-pipeline-form");
  await d.getByRole("button", { name: "Create pipeline" }).click();
  await d.waitFor({ state: "detached" });
  await page.getByRole("link", { name: "shop-pipeline" }).click();
  await page.getByRole("heading", { name: "Pipeline shop-pipeline" }).waitFor();
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("Pipeline started.").waitFor();
  log("source, two destinations and a pipeline made through the forms; started");

  // --- rows and lag move on the overview --------------------------------
  let next = 1000;
  writer = setInterval(() => {
    try {
      psql(pg.source, `INSERT INTO customers (id, name, qty) VALUES (${next}, 'live ${next}', 1); INSERT INTO orders (customer_id, amount) VALUES (${next}, 9.5);`);
      next++;
    } catch (e) {
      console.error("write to the source:", e.message);
    }
  }, 300);
  await page.getByRole("link", { name: "Overview" }).click();
  const row = (name) => page.getByRole("row").filter({ has: page.getByRole("cell", { name: new RegExp(`^${name} \\(`) }) });
  const cells = async (name) => (await row(name).getByRole("cell").allInnerTexts()).map((s) => s.trim());
  // Columns: pipeline, destination, health, lag, lag bytes, pending, throughput, DLQ, last applied.
  const seen = { lastApplied: new Set(), throughput: new Set(), lag: new Set() };
  await eventually("both destinations applying live rows on the overview", async () => {
    for (const n of ["warehouse", "analytics"]) {
      const c = await cells(n);
      seen.lastApplied.add(`${n}:${c[8]}`);
      seen.throughput.add(`${n}:${c[6]}`);
      seen.lag.add(`${n}:${c[3]}|${c[4]}`);
      if (!c[2].startsWith("HEALTHY")) throw new Error(`${n} is ${c[2]}`);
    }
    const warehouseTimes = [...seen.lastApplied].filter((s) => s.startsWith("warehouse:") && !s.endsWith("–"));
    const moving = [...seen.throughput].filter((s) => !s.endsWith(":0.0/s") && !s.endsWith(":–"));
    if (warehouseTimes.length < 3 || moving.length < 2) throw new Error(`last applied ${[...seen.lastApplied]}; throughput ${[...seen.throughput]}`);
  }, 90_000);
  const destRows = Number(psql(pg.dest, "SELECT count(*) FROM customers WHERE id >= 1000"));
  if (destRows < 3) throw new Error(`only ${destRows} live rows reached the PostgreSQL destination`);
  log(`overview moved: last applied ${seen.lastApplied.size} values, throughput ${[...seen.throughput].join(" ")}, lag ${[...seen.lag].slice(-2).join(" ")}; ${destRows} live rows in PostgreSQL`);
  await check(page, "07-overview");
  clearInterval(writer);
  writer = undefined;

  // --- live tail: a row written now appears in the browser ---------------
  await page.getByRole("link", { name: "shop-pipeline" }).first().click();
  await page.getByRole("link", { name: "Live tail" }).click();
  await page.getByRole("heading", { name: "Live tail: shop-pipeline" }).waitFor();
  await page.getByText("Following new changes as they are captured.").waitFor();
  // The tail starts at new changes; its consumer may still be being made
  // when the first probe commits, so probes go in until one shows.
  let probe = 5000;
  await eventually("a row written at the source shown by the live tail", async () => {
    psql(pg.source, `INSERT INTO customers (id, name, qty) VALUES (${probe}, 'tail probe ${probe}', 1)`);
    probe++;
    await page.getByText(/name="tail probe \d+"/).first().waitFor({ timeout: 2000 });
  });
  const probeRow = page.getByRole("row").filter({ hasText: /tail probe/ }).first();
  const probeText = await probeRow.innerText();
  if (!/\bc\b/.test(probeText) || !probeText.includes("public.customers") || !/id=50\d\d/.test(probeText)) throw new Error(`the live tail row reads ${JSON.stringify(probeText)}`);
  await page.getByRole("button", { name: "Pause" }).click();
  psql(pg.source, `INSERT INTO customers (id, name, qty) VALUES (${probe}, 'while paused', 1)`);
  await page.getByText(/Paused: [1-9]\d* new changes held back/).waitFor({ timeout: 30_000 });
  if (await page.getByText('name="while paused"').count()) throw new Error("a change arriving while paused is shown");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByText('name="while paused"').waitFor();
  log(`live tail: rows written by the test appear (${probeText.replace(/\s+/g, " ").slice(0, 120)}), pause holds them back, resume shows them`);
  await check(page, "08-live-tail");
  await page.getByRole("button", { name: "Clear" }).click();
  await page.getByText("No changes yet").waitFor();
  await page.getByRole("link", { name: "Overview" }).click();

  // --- a rejected row, recovered from the DLQ page -----------------------
  psql(pg.source, `INSERT INTO customers (id, name, qty) VALUES (9001, 'rejected', -5)`);
  await eventually("the DLQ depth on the overview", async () => {
    const c = await cells("warehouse");
    if (c[7] !== "1") throw new Error(`warehouse DLQ cell is ${c[7]}`);
  });
  await page.getByRole("link", { name: "shop-pipeline" }).first().click();
  const whSection = page.locator("section.card").filter({ has: page.getByRole("heading", { name: /^warehouse: \d+ dead-lettered$/ }) });
  await whSection.getByRole("cell", { name: "constraint_violation" }).waitFor();
  await whSection.getByText("customers_qty_check").first().waitFor();
  await check(page, "09-dlq");
  psql(pg.dest, `ALTER TABLE customers DROP CONSTRAINT customers_qty_check`);
  await whSection.getByRole("button", { name: "Recover" }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Recover" }).click();
  await whSection.getByText(/Recovery \d+: COMPLETED 1 replayed/).waitFor({ timeout: 60_000 });
  await page.getByRole("heading", { name: "warehouse: 0 dead-lettered" }).waitFor();
  const qty = psql(pg.dest, `SELECT qty FROM customers WHERE id = 9001`);
  if (qty !== "-5") throw new Error(`the recovered row has qty ${JSON.stringify(qty)} at the destination, want -5`);
  log("rejected row dead-lettered with its class and reason, recovered from the DLQ page, now at the destination");

  // --- a filtered backfill -----------------------------------------------
  await page.getByRole("button", { name: "New backfill" }).click();
  await d.getByLabel("Table").selectOption("public.customers");
  await d.getByRole("button", { name: "Add filter" }).click();
  await d.getByLabel("Filter 1 column").fill("id");
  await d.getByLabel("Filter 1 operator").selectOption("<=");
  await d.getByLabel("Filter 1 value").fill("10");
  await d.getByRole("button", { name: "Start backfill" }).click();
  await d.waitFor({ state: "detached" });
  const job = page.getByRole("row").filter({ hasText: 'id <= "10"' });
  await job.getByText("COMPLETED").waitFor({ timeout: 60_000 });
  const jobText = await job.innerText();
  if (!/\b10\b/.test(jobText)) throw new Error(`the backfill row does not show 10 rows copied: ${jobText}`);
  log("filtered backfill (id <= 10) completed");
  await check(page, "10-pipeline");

  // --- read-only SQL on the DuckDB destination while it replicates --------
  await page.getByRole("link", { name: "Query DuckDB" }).click();
  await page.getByLabel("Destination").selectOption({ label: "analytics" });
  const sqlBox = page.getByLabel("SQL");
  await sqlBox.fill("DELETE FROM main.customers");
  await page.getByRole("button", { name: "Run query" }).click();
  await page.getByText("only a single read statement").waitFor();
  if ((await sqlBox.getAttribute("aria-invalid")) !== "true") throw new Error("a refused statement is not shown at the SQL field");
  await sqlBox.fill("SELECT count(*) AS n FROM main.customers WHERE id <= 10");
  await page.getByRole("button", { name: "Run query" }).click();
  await page.getByRole("cell", { name: "10", exact: true }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
  const csv = await (await import("node:fs/promises")).readFile(await download.path(), "utf8");
  if (csv !== "n\r\n10\r\n") throw new Error(`the CSV download is ${JSON.stringify(csv)}`);
  log("DuckDB query page: a write refused at the SQL field, a count read while the sink writes, CSV downloaded");
  await check(page, "11-query");

  // --- WAL and slot charts ------------------------------------------------
  await page.getByRole("link", { name: "WAL & slots" }).click();
  await page.getByText("Last check").waitFor({ timeout: 30_000 });
  await page.getByRole("img", { name: /WAL retained for the slot over time/ }).waitFor();
  await check(page, "12-wal");

  // --- the audit log shows what this suite did -------------------------
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  const auditRow = (action, what) => page.getByRole("row").filter({ has: page.getByRole("cell", { name: action, exact: true }) }).filter({ has: page.getByRole("cell", { name: new RegExp(`^${what} [\\d/]+$`) }) });
  for (const [action, what] of [["create", "sources"], ["create", "destinations"], ["create", "pipelines"], ["start", "pipelines"], ["recover-dlq", "pipelines"]]) {
    await auditRow(action, what).first().waitFor();
  }
  const created = await auditRow("create", "sources").first().innerText();
  if (!created.includes(pg.source) || /"?password"?:/.test(created)) throw new Error(`the source's create entry reads ${JSON.stringify(created)}`);
  log("audit log: the suite's creates, start and DLQ recovery are listed with who and what, the source's fields without a password");
  await check(page, "13-audit");

  // --- a viewer sees no write actions -----------------------------------
  {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").fill(viewerToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByText("(viewer)").waitFor();
    const writeButtons = /^(New source|New destination|New pipeline|Edit|Delete|Start|Pause|Refresh snapshots|New backfill|Recover|Discard|Cancel job)$/;
    for (const [link, heading] of [["Sources", "Sources"], ["Destinations", "Destinations"], ["Pipelines", "Pipelines"]]) {
      await page.getByRole("link", { name: link }).click();
      await page.getByRole("heading", { name: heading }).waitFor();
      await page.getByRole("cell").first().waitFor();
      const n = await page.getByRole("button", { name: writeButtons }).count();
      if (n) throw new Error(`a viewer sees ${n} write actions on ${link}`);
    }
    await page.getByRole("link", { name: "shop-pipeline" }).click();
    await page.getByRole("heading", { name: "Snapshots and backfills" }).waitFor();
    const n = await page.getByRole("button", { name: writeButtons }).count();
    if (n) throw new Error(`a viewer sees ${n} write actions on the pipeline page`);
    if (await page.getByRole("heading", { name: "Dead-letter queues" }).count()) throw new Error("a viewer sees the dead-letter queues (row data)");
    if (await page.getByRole("link", { name: "Query DuckDB" }).count()) throw new Error("a viewer is offered the DuckDB query page");
    if (await page.getByRole("link", { name: "Live tail" }).count()) throw new Error("a viewer is offered the live tail (row data)");
    if (await page.getByRole("link", { name: "Audit log" }).count()) throw new Error("a viewer is offered the audit log");
    await check(page, "14-viewer-pipeline");
    log("viewer: no write action on any page, no dead-letter rows");
  }

  if (foreign.length) throw new Error(`the console asked for something outside the Rosetta API: ${foreign.join(", ")}`);
  if (violations.length) throw new Error(`accessibility (axe) violations:\n${violations.join("\n")}`);
  log(`console suite passed; screenshots in ${shots}`);
} finally {
  if (writer) clearInterval(writer);
  await browser.close();
}
