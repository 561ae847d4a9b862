// The coordinator's dashboard in a real browser: a real `mist demo --dashboard` process (the built
// CLI, `npm run build`) and the system's chromium driven headless by puppeteer-core (which never
// downloads a browser): log in, see the job appear, see the loss chart get new points, open the
// plan picture. Screenshots go to apps/cli/.test-results/screenshots/. Without chromium
// (/usr/bin/chromium, or $MIST_CHROMIUM) the test is skipped with the reason printed, unless
// MIST_REQUIRE_BROWSER=1 (CI), where it fails.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MIST = path.resolve(__dirname, '../../bin/mist.js');
const CHROMIUM = process.env.MIST_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.resolve(__dirname, '../../.test-results/screenshots');
const haveBrowser = fs.existsSync(CHROMIUM);
const required = process.env.MIST_REQUIRE_BROWSER === '1';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

if (!haveBrowser && !required) {
  console.warn(`dashboard browser test skipped: no chromium at ${CHROMIUM} (install Debian's chromium or set MIST_CHROMIUM; MIST_REQUIRE_BROWSER=1 makes this a failure)`);
}

async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const bytes = fs.readFileSync(file);
  expect(bytes.length).toBeGreaterThan(1000);
  expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  return file;
}

if (!haveBrowser && required) {
  describe('the dashboard in chromium', () => {
    it('finds chromium (MIST_REQUIRE_BROWSER=1)', () => {
      throw new Error(`MIST_REQUIRE_BROWSER=1 but there is no chromium at ${CHROMIUM} (apt-get install chromium, or set MIST_CHROMIUM)`);
    });
  });
}

describe.skipIf(!haveBrowser)('the dashboard of `mist demo --dashboard` in chromium', () => {
  let demo: ChildProcess | undefined;
  let exited: Promise<number | null> | undefined;
  let browser: Browser | undefined;
  let dashboard: { url: string; token: string };

  beforeAll(async () => {
    demo = spawn(process.execPath, [MIST, 'demo', '--dashboard', '--steps', '100000', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = demo;
    exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    dashboard = await new Promise((resolve, reject) => {
      readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
        if (l.startsWith('{"dashboard":')) resolve((JSON.parse(l) as { dashboard: { url: string; token: string } }).dashboard);
      });
      void exited!.then((code) => reject(new Error(`mist demo exited (${code}) before printing the dashboard: ${stderr}`)));
    });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM, headless: true,
      // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1300,900'],
      defaultViewport: { width: 1300, height: 900 },
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) demo.kill('SIGTERM');
    if (exited) await exited;
  }, 60_000);

  it('asks for the token, then shows the agents and the job with live charts, the stages and the plan picture', async () => {
    const page = await browser!.newPage();
    // What the page saw, for the message of a wait that times out (a flake seen once in CI: the loss
    // chart got no point in 90 s while the job was listed).
    const seen: string[] = [];
    const note = (line: string): void => { seen.push(`${new Date().toISOString().slice(11, 23)} ${line}`); if (seen.length > 60) seen.shift(); };
    page.on('console', (m) => note(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => note(`page error: ${e instanceof Error ? e.message : String(e)}`));
    page.on('requestfailed', (r) => note(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => { if (r.url().includes('/api/jobs/') && r.status() !== 200) note(`${r.url()}: HTTP ${r.status()}`); });
    const waitOrTell = async (predicate: string, timeout: number): Promise<void> => {
      try {
        await page.waitForFunction(predicate, { timeout });
      } catch (err) {
        const state = await page.evaluate('JSON.stringify({ url: location.href, state: (document.querySelector("#job-state") || {}).textContent, ' +
          'step: (document.querySelector("#job-step") || {}).textContent, message: (document.querySelector("#job-message") || {}).textContent })').catch(() => '?');
        throw new Error(`${err instanceof Error ? err.message : String(err)} waiting for ${predicate}; page ${String(state)}; demo exited: ${demo?.exitCode}\n${seen.join('\n')}`);
      }
    };
    // No data without the token: the dashboard sends the browser to the login form.
    await page.goto(dashboard.url);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.type('#token', 'not-the-token');
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    expect(await page.$('#login-error')).not.toBeNull();
    await screenshot(page, 'login-refused');

    await page.type('#token', dashboard.token);
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    expect(new URL(page.url()).pathname).toBe('/');
    // The job appears (the overview polls), the two agents with two CPU devices each.
    await page.waitForSelector('#jobs tbody tr[data-job] a', { timeout: 60_000 });
    expect(await page.$$eval('#agents tbody tr', (rows) => rows.length)).toBe(2);
    expect(await page.$eval('#agents tbody', (t) => (t.textContent ?? '').match(/cpu:\d/g)?.length)).toBe(4);
    await screenshot(page, 'overview');

    await Promise.all([page.waitForNavigation(), page.click('#jobs tbody tr[data-job] a')]);
    expect(page.url()).toMatch(/\/jobs\/job-/);
    // The loss chart gets points, then more points as training goes on.
    // (Predicates as strings: they run in the page, and this repository's TypeScript has no DOM types.)
    const points = 'Number(document.querySelector("#chart-loss").getAttribute("data-points"))';
    await waitOrTell(`${points} > 0`, 90_000);
    const first = Number(await page.$eval('#chart-loss', (e) => e.getAttribute('data-points')));
    await waitOrTell(`${points} > ${first}`, 60_000);
    expect(await page.$$eval('#chart-loss canvas', (c) => c.length)).toBeGreaterThan(0);
    expect(await page.$eval('#job-state', (e) => e.textContent)).toBe('running');
    // Predicted beside measured per stage, once the ranks reported.
    await page.waitForFunction('(document.querySelector("#stages tbody tr td:nth-child(3)") || { textContent: "-" }).textContent !== "-"', { timeout: 60_000 });
    // Logs arrive and are followed.
    await page.waitForFunction('document.querySelector("#logs").textContent.includes("[rank ")', { timeout: 60_000 });
    // The plan picture is shown on the page once the plan is known.
    await page.waitForFunction('(document.querySelector("#plan-img") || {}).naturalWidth > 0', { timeout: 60_000 });
    await screenshot(page, 'job');

    // Opening the plan picture: an SVG with one row per stage of the job's plan.
    const href = new URL((await page.$eval('#plan-link', (a) => a.getAttribute('href')))!, page.url()).toString();
    const res = await page.goto(href);
    expect(res!.status()).toBe(200);
    expect(res!.headers()['content-type']).toBe('image/svg+xml');
    expect(await page.$$eval('g.stage', (g) => g.length)).toBeGreaterThan(0);
    expect(await page.$$eval('rect.box.forward', (r) => r.length)).toBeGreaterThan(0);
    await screenshot(page, 'plan');
  }, 240_000);
});
