// tests/browser/dashboard.mjs — lh-gateway's dashboard in headless Chromium (Debian's chromium
// driven by playwright-core). Run by tests/integration/0025-dashboard.c, which starts the stack,
// submits a plan that stops at an approval gate (a token budget it exceeds) and checks the
// database afterwards. This script is the user: it signs in with the token, finds the plan in the
// list, opens it, sees the DAG, clicks Approve and watches the plan finish — every wait is on a
// DOM condition, none is a sleep.
//
// Environment: LH_DASH_URL (http://127.0.0.1:PORT), LH_DASH_TOKEN, LH_DASH_PLAN, LH_DASH_SHOTS
// (directory for screenshots), LH_CHROMIUM (default /usr/bin/chromium), LH_DASH_TIMEOUT_MS.
// Prints "ok"/"FAIL" per step and "screenshot: PATH" per screenshot; exit 0 when every step
// passed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const url = process.env.LH_DASH_URL;
const token = process.env.LH_DASH_TOKEN;
const plan = process.env.LH_DASH_PLAN;
const plan2 = process.env.LH_DASH_PLAN2; // optional: a plan paused with tasks 3 and 4 not started
const shots = process.env.LH_DASH_SHOTS || '.';
const timeout = Number(process.env.LH_DASH_TIMEOUT_MS || 120000);
if (!url || !token || !plan) {
  console.log('FAIL: LH_DASH_URL, LH_DASH_TOKEN and LH_DASH_PLAN are required');
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });

let failed = 0;
const ok = (what) => console.log('ok   ' + what);
const bad = (what, why) => { failed++; console.log('FAIL ' + what + (why ? ': ' + why : '')); };
async function step(what, fn) {
  try { await fn(); ok(what); return true; } catch (e) { bad(what, String(e && e.message || e).split('\n')[0]); return false; }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

const browser = await chromium.launch({
  executablePath: process.env.LH_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await context.newPage();
page.setDefaultTimeout(timeout);

const problems = [];   // CSP violations, script errors, failed loads
const apiCalls = [];   // every request to /v1: must carry the token in the header, never the URL
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 40[0-9]/.test(m.text())) problems.push('console: ' + m.text());
});
page.on('request', (r) => {
  if (new URL(r.url()).pathname.startsWith('/v1/')) apiCalls.push({ url: r.url(), auth: r.headers().authorization || '' });
});
await page.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
});

async function shot(name) {
  const file = path.join(shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log('screenshot: ' + path.resolve(file));
}

let good = true;
good = await step('the dashboard loads with its CSP and asks for a token', async () => {
  const resp = await page.goto(url + '/');
  check(resp.ok(), 'GET / answered ' + resp.status());
  check(new URL(page.url()).pathname === '/dashboard/', 'not redirected to /dashboard/: ' + page.url());
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && csp.includes("default-src 'none'"), 'no strict CSP: ' + csp);
  await page.locator('#login').waitFor({ state: 'visible' });
}) && good;
await shot('01-login');

good = await step('a wrong token is refused and the form stays', async () => {
  await page.fill('#token', 'lh_' + '0'.repeat(64));
  await page.click('#login-submit');
  await page.locator('#login-error').filter({ hasText: 'refused' }).waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('longhaul.token')) === null, 'a refused token was kept');
}) && good;

good = await step('sign in: the plan is listed with its status and progress', async () => {
  await page.fill('#token', token);
  await page.click('#login-submit');
  await page.locator(`#plans-body tr[data-plan="${plan}"]`).waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('longhaul.token')) !== null, 'token not kept in sessionStorage');
  check(await page.evaluate(() => localStorage.length) === 0, 'something was written to localStorage');
  const st = await page.locator(`#plans-body tr[data-plan="${plan}"] .badge`).getAttribute('data-status');
  check(['paused', 'running', 'waiting'].includes(st), 'plan status ' + st);
  await page.locator('#plans-cost svg.chart').waitFor();
}) && good;
await shot('02-plans');

good = await step('the pending approval is counted in the header', async () => {
  await page.locator('#pending-count.has').waitFor();
}) && good;

good = await step('the plan page draws the DAG as SVG, layered, with state colours', async () => {
  await page.click(`#plans-body tr[data-plan="${plan}"] a`);
  await page.waitForURL('**/dashboard/#/plans/' + plan);
  await page.locator('#dag svg.dag g.node[data-task="0"]').waitFor();
  // the planner's tasks: wait until the plan's tasks beyond the planner are drawn
  await page.waitForFunction(() => document.querySelectorAll('#dag g.node').length >= 3);
  const nodes = await page.$$eval('#dag g.node', (els) => els.map((e) => ({
    task: Number(e.dataset.task), status: e.dataset.status,
    x: e.transform.baseVal.consolidate().matrix.e,
    stroke: getComputedStyle(e.querySelector('rect')).stroke,
  })));
  const edges = await page.$$eval('#dag path.edge', (els) => els.map((e) => [Number(e.dataset.from), Number(e.dataset.to)]));
  check(edges.length >= nodes.length - 2, `only ${edges.length} edges for ${nodes.length} nodes`);
  const x = new Map(nodes.map((n) => [n.task, n.x]));
  for (const [a, b] of edges) check(x.get(a) < x.get(b), `edge ${a}->${b} does not go right`);
  const ok0 = nodes.find((n) => n.task === 0);
  check(ok0 && ok0.status === 'succeeded', 'the planner task is not succeeded');
  const green = nodes.filter((n) => n.status === 'succeeded').map((n) => n.stroke);
  const grey = nodes.filter((n) => n.status === 'pending').map((n) => n.stroke);
  check(green.length && new Set(green).size === 1, 'succeeded nodes do not share a colour');
  if (grey.length) check(grey[0] !== green[0], 'pending and succeeded nodes have the same colour');
  await page.locator('#plan-status[data-status="paused"]').waitFor();
}) && good;

good = await step('the request, the decision log and the live event feed are shown', async () => {
  await page.locator('#plan-requests .request[data-kind="budget_extension"] button[data-action="approve"]').waitFor();
  await page.locator('#decision-log tr[data-kind="budget_extension"]').waitFor();
  await page.locator('#events div[data-type="budget.exceeded"]').waitFor();
  await page.locator('#plan-cost svg.chart').waitFor();
  check((await page.locator('#conn').textContent()) === 'live', 'the event stream is not live');
}) && good;
await shot('03-plan-waiting');

good = await step('click Approve: the plan resumes and finishes, the DAG turns green live', async () => {
  const card = page.locator('#plan-requests .request[data-kind="budget_extension"]');
  const edit = await card.locator('textarea.edit').inputValue();
  check(/"tokens":\s*1400/.test(edit), 'the suggested limit is not offered: ' + edit);
  await card.locator('input.reason').fill('approved from the dashboard test');
  await card.locator('button[data-action="approve"]').click();
  // the card says the answer went, until the request is folded and the card goes (either may
  // already have happened when this looks)
  await page.waitForFunction(() => {
    const c = document.querySelector('#plan-requests .request[data-kind="budget_extension"]');
    return !c || c.querySelector('.sent');
  });
  await page.locator('#plan-status[data-status="completed"]').waitFor();
  await page.waitForFunction(() => {
    const n = [...document.querySelectorAll('#dag g.node')];
    return n.length >= 3 && n.every((e) => e.dataset.status === 'succeeded');
  });
  await page.locator('#events div[data-type="plan.completed"]').waitFor();
  await page.locator('#plan-output').waitFor();
  check((await page.locator('#plan-requests .request').count()) === 0, 'the answered request is still shown as pending');
}) && good;
await shot('04-plan-completed');

good = await step('the requests page shows nothing pending for this plan', async () => {
  await page.goto(url + '/dashboard/#/requests');
  await page.locator('#requests').waitFor();
  await page.waitForFunction((p) => document.querySelector('#requests') &&
    !document.querySelector(`#requests .request[data-key^="${p}/"]`) &&
    document.querySelector('#requests').childElementCount > 0, plan);
}) && good;
await shot('05-requests');

if (plan2) {
  good = await step('modify a waiting plan from the dashboard: the DAG shows the patch', async () => {
    await page.goto(url + '/dashboard/#/plans/' + plan2);
    await page.locator('#dag g.node[data-task="4"][data-status="pending"]').waitFor();
    await page.click('#modify summary');
    await page.waitForFunction(() => /"base_version": 1/.test(document.querySelector('#patch').value));
    await page.fill('#patch', JSON.stringify({
      base_version: 1, remove: [4], reason: 'from the dashboard',
      tasks: [{ task_no: 6, tier: 'fast', instructions: 'Compare ${2} with ${3}', refs: [2, 3] }],
    }));
    await page.click('button[data-action="modify"]');
    await page.locator('#dag g.node[data-task="7"]').waitFor();
    await page.locator('#dag g.node[data-task="4"][data-status="skipped"]').waitFor();
    await page.locator('#dag g.node[data-task="6"][data-status="pending"]').waitFor();
    check(await page.locator('#dag path.edge[data-from="6"][data-to="7"]').count() === 1, 'no edge 6 -> 7');
    check(await page.locator('#dag path.edge[data-to="5"]').count() > 0, 'the old join lost its edges');
  }) && good;
  await shot('06-plan-modified');
  good = await step('extend its task budget: the patched plan finishes', async () => {
    const card = page.locator('#plan-requests .request[data-kind="budget_extension"]');
    await card.locator('textarea.edit').fill('{"tasks": 100}');
    await card.locator('button[data-action="approve"]').click();
    await page.locator('#plan-status[data-status="completed"]').waitFor();
    await page.locator('#dag g.node[data-task="6"][data-status="succeeded"]').waitFor();
    await page.locator('#dag g.node[data-task="7"][data-status="succeeded"]').waitFor();
    check(await page.locator('#modify').isHidden(), 'the patch editor is still offered on a finished plan');
  }) && good;
  await shot('07-modified-completed');
}

good = await step('no CSP violation, script error or token in a URL', async () => {
  check(problems.length === 0, problems.slice(0, 3).join(' | '));
  check(apiCalls.length > 5, 'only ' + apiCalls.length + ' API calls seen');
  for (const c of apiCalls) {
    check(!c.url.includes(token), 'the token is in a URL: ' + c.url);
  }
  const authed = apiCalls.filter((c) => c.auth === 'Bearer ' + token).length;
  // the refused sign-in used the wrong token; every other call carries the right one
  check(authed >= apiCalls.length - 1, `${apiCalls.length - authed} API calls without the token`);
}) && good;

await browser.close();
console.log(failed ? `dashboard: ${failed} step(s) failed` : 'dashboard: every step passed');
process.exit(failed ? 1 : 0);
