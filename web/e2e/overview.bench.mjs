// Times the overview's first render for `make bench` (bench/cmd/rosetta-bench,
// console phase): in Debian's Chromium through playwright-core, against a
// `rosetta dev` holding PIPELINES paused pipelines, RUNS times, each in a
// fresh browser context (empty cache, the token already in the session as
// after signing in). A run is navigation start until the overview's table
// holds every pipeline's row. Prints the runs in milliseconds as one JSON
// array on the last line. Not a test: it asserts nothing.
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set: run this through make bench (bench/cmd/rosetta-bench)`);
  return v;
};
const url = env("CONSOLE_URL");
const token = env("ADMIN_TOKEN");
const runs = Number(env("RUNS"));
const pipelines = Number(env("PIPELINES"));
const rows = Math.min(pipelines, 50); // the overview's page size

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const times = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    await context.addInitScript(
      ([t]) => {
        sessionStorage.setItem("rosetta.token", t);
        sessionStorage.setItem("rosetta.who", JSON.stringify({ name: "bench", role: "admin" }));
      },
      [token],
    );
    const page = await context.newPage();
    await page.goto(url + "/", { waitUntil: "commit" });
    // performance.now() counts from the navigation's start.
    const at = await page.waitForFunction(
      (n) => {
        const got = document.querySelectorAll("main table tbody tr:not(:has(td.empty))").length;
        return got >= n ? performance.now() : false;
      },
      rows,
      { polling: "raf", timeout: 60_000 },
    );
    const ms = await at.jsonValue();
    times.push(Math.round(ms));
    console.error(`run ${i + 1}: ${Math.round(ms)} ms`);
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(times));
