import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRACE_FORMAT } from '../../sim/trace.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { createElector } from '../../src/createElector.js';
import { createInspectRecorder } from '../../src/inspect/recorder.js';
import { syntheticTrace } from '../../src/inspect/synthetic.js';
import { buildViewerHtml, stateValueToPath } from '../../src/inspect/viewer.js';
import { TestClock } from '../../src/TestClock.js';
import { unsafeRunTrace } from './unsafeRun.js';

let unsafeRun: ReturnType<typeof unsafeRunTrace> | undefined;
/** The unsafe-config simulator run, simulated once for every test that draws it. */
const unsafeRunOnce = () => {
  unsafeRun ??= unsafeRunTrace();
  return unsafeRun;
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) {
  if (process.env.CI === 'true') throw new Error(`browser tests need ${CHROMIUM} (Debian's chromium) under CI`);
  console.warn(`\n!!! SKIPPING browser tests: ${CHROMIUM} not found (install Debian's chromium; CI=true makes this fatal) !!!\n`);
}

const ARTIFACTS = resolve('artifacts', 'browser');

interface Opened {
  page: Page;
  loadMs: number;
  path: string;
  /** Page errors, CSP violations and requests for anything but the page itself, so far. */
  problems(): Promise<string[]>;
}

/** Opens `html` from a file:// URL and waits until the page is ready, with no page error, CSP violation or request. */
async function open(context: BrowserContext, html: string, name: string): Promise<Opened> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.html`);
  writeFileSync(path, html);
  const href = pathToFileURL(path).href;
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('request', (req) => {
    if (req.url() !== href) errors.push(`request: ${req.url()}`);
  });
  await page.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const started = performance.now();
  await page.goto(href);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const loadMs = performance.now() - started;
  const problems = async () => [...errors, ...(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp))];
  expect(await problems()).toEqual([]);
  return { page, loadMs, path, problems };
}

/** Pixels of the timeline canvas within a CSS-pixel rectangle whose colour is within `tol` of `rgb` (per channel). */
function countColour(page: Page, x: number, y: number, w: number, h: number, rgb: number[], tol = 6): Promise<number> {
  return page.evaluate(
    ({ x, y, w, h, rgb, tol }) => {
      const c = document.getElementById('lanes') as HTMLCanvasElement;
      const dpr = (window as any).viewer.geometry().dpr;
      const data = c.getContext('2d')!.getImageData(Math.round(x * dpr), Math.round(y * dpr), Math.round(w * dpr), Math.round(h * dpr)).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i]! - rgb[0]!) <= tol && Math.abs(data[i + 1]! - rgb[1]!) <= tol && Math.abs(data[i + 2]! - rgb[2]!) <= tol) n++;
      }
      return n;
    },
    { x, y, w, h, rgb, tol },
  );
}

describe.skipIf(!available)('trace viewer in chromium', () => {
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), 'fenced-leader-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('draws one lane per node and highlights each node\'s state as the scrubber steps', async () => {
    const lines = syntheticTrace({ nodes: 4, durationMs: 30_000, seed: 3, faultEveryMs: 5000 });
    const { page } = await open(context, buildViewerHtml(lines, 'synthetic 4 nodes'), 'synthetic-small');
    const nodes = ['n1', 'n2', 'n3', 'n4'];
    const labels = await page.$$eval('.lane-label[data-node]', (els) => els.map((e) => e.getAttribute('data-node')));
    expect(labels).toEqual(nodes);
    const canvasHeight = await page.$eval('#lanes', (c) => (c as HTMLCanvasElement).height);
    expect(canvasHeight).toBeGreaterThan(4 * 22);

    // Expected states, computed here from the trace itself.
    const transitions = lines.flatMap((l, i) => (l.kind === 'transition' ? [{ ...l, i }] : [])).sort((a, b) => a.t - b.t || a.i - b.i);
    const expectedAt = (step: number) => {
      const state: Record<string, string> = {};
      for (const tr of transitions) if (state[tr.node] === undefined) state[tr.node] = tr.from;
      for (const tr of transitions.slice(0, step + 1)) state[tr.node] = tr.to;
      return state;
    };

    for (let k = 0; k < 25; k++) await page.click('#next');
    const step = await page.evaluate(() => (window as any).viewer.current());
    expect(step).toBe(25);
    const stepText = await page.textContent('#step');
    expect(stepText).toContain(transitions[25]!.to);
    expect(await page.textContent('#step-event')).toBe(transitions[25]!.event);
    const expected = expectedAt(step);
    for (const node of nodes) {
      const shown = await page.evaluate((n) => (window as any).viewer.stateOf(n), node);
      expect(shown).toBe(expected[node]);
      const box = await page.$eval(`#chart [data-state="${expected[node]}"]`, (g) => ({ cls: g.getAttribute('class'), nodes: g.getAttribute('data-nodes') }));
      expect(box.cls).toContain('active');
      expect(box.nodes!.split(' ')).toContain(node);
    }

    // Drive the scrubber directly, then focus one node: only its state stays highlighted.
    await page.$eval('#scrubber', (el) => {
      (el as HTMLInputElement).value = '200';
      el.dispatchEvent(new Event('input'));
    });
    await page.selectOption('#focus', { label: 'n2' });
    const at200 = expectedAt(200);
    const focused = await page.$$eval('#chart .state.atomic.active', (els) => els.map((e) => e.getAttribute('data-state')));
    expect(focused).toEqual([at200.n2]);
  });

  it('marks the checker violation of an unsafe-config run on the timeline and lists it', async () => {
    const { lines, source } = await unsafeRunOnce();
    const violations = lines.filter((l) => l.kind === 'violation');
    expect(violations.length).toBeGreaterThan(0);
    const { page } = await open(context, buildViewerHtml(lines, `unsafe config (${source})`), 'unsafe-run');
    const listed = await page.$$eval('#violations li[data-violation]', (els) => els.map((e) => e.getAttribute('data-violation')));
    expect(listed.length).toBe(violations.length);
    await page.click('#violations li[data-violation]');
    const markers = await page.evaluate(() => (window as any).viewer.markers());
    expect(markers.length).toBeGreaterThan(0);
    const first = violations[0]! as { t: number };
    const cursorT = await page.evaluate(() => (window as any).viewer.transition().t);
    expect(cursorT).toBeLessThanOrEqual(first.t);
    const shot = join(ARTIFACTS, 'viewer-unsafe-run.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`viewer screenshot (${source}): ${shot}`);
  });

  it('draws a compact lane per agent of an agents run, with its claims, stale mark and requeue note', async () => {
    // A real `fenced-leader sim --seed 6 --agents 3` run, cut at 11.5 s (store messages and `send` work lines dropped).
    const text = readFileSync(new URL('./agentsRun.jsonl', import.meta.url), 'utf8');
    const { page } = await open(context, buildViewerHtml(text, 'agents run (seed 6)'), 'agents-run');
    const agentLanes = await page.$$eval('.lane-label[data-agent]', (els) => els.map((e) => e.getAttribute('data-agent')));
    expect(agentLanes).toEqual(['a1', 'a2', 'a3']);
    const nodeLanes = await page.$$eval('.lane-label[data-node]', (els) => els.map((e) => e.getAttribute('data-node')));
    expect(nodeLanes).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    const claims = await page.evaluate(() => (window as any).viewer.claims());
    expect(claims.length).toBeGreaterThan(100);
    expect(claims.every((c: { write: number }) => c.write !== 0)).toBe(true);
    const events = await page.evaluate(() => (window as any).viewer.agentEvents('a2'));
    const kinds = events.map((e: { kind: string }) => e.kind);
    expect(kinds).toContain('claim');
    expect(kinds).toContain('complete');
    const requeue = events.find((e: { kind: string }) => e.kind === 'requeue');
    expect(requeue.note).toMatch(/^handoff: t\d+ requeued by n\d at epoch \d+ from a2/);
    expect(await page.evaluate((t) => (window as any).viewer.agentStateAt('a2', t), requeue.t)).toBe('stale');
    expect(await page.evaluate(() => (window as any).viewer.agentStateAt('a2', 5000))).toBe('active');
    // Stepping past the requeue shows it in the details panel (states as of the current transition's time).
    await page.evaluate((t) => (window as any).viewer.seekTime(t), requeue.t);
    await page.click('#next');
    expect(await page.evaluate(() => (window as any).viewer.transition().t)).toBeGreaterThanOrEqual(requeue.t);
    expect(await page.textContent('#agent-states [data-agent="a2"]')).toContain('stale');
    expect(await page.getAttribute('#agent-states [data-agent="a2"]', 'title')).toContain('requeued');
    expect(await page.textContent('#legend')).toContain('requeue');

    // What the canvas shows (read back from its pixels), not only what the page's model says.
    const geo = await page.evaluate(() => (window as any).viewer.geometry());
    const agentRow = geo.agentTops[1] as number; // a2
    const xAt = (t: number) => page.evaluate((tt) => (window as any).viewer.xOf(tt), t) as Promise<number>;
    const xRequeue = await xAt(requeue.t);
    const STALE = [255, 169, 77];
    const ACTIVE = [195, 250, 232];
    const REQUEUE = [232, 89, 12];
    // a2's band: active early on, stale after the sweep marked it; the requeue marker sits at the requeue.
    expect(await countColour(page, (await xAt(4000)) - 20, agentRow + 5, 40, 6, ACTIVE)).toBeGreaterThan(100);
    expect(await countColour(page, (await xAt(4000)) - 20, agentRow + 5, 40, 6, STALE)).toBe(0);
    expect(await countColour(page, xRequeue + 6, agentRow, 40, geo.agentH, STALE)).toBeGreaterThan(20);
    expect(await countColour(page, xRequeue - 6, agentRow, 13, geo.agentH, REQUEUE)).toBeGreaterThan(8);
    expect(await countColour(page, (await xAt(4000)) - 20, agentRow, 40, geo.agentH, REQUEUE)).toBe(0);
    // The leader's token claims (work lines) are ticks along the bottom of its lane: n4 led throughout.
    const leaderLane = geo.laneTops[3] as number;
    const claimXs = [...new Set(await Promise.all(claims.slice(10, 60).map((c: { t: number }) => xAt(c.t).then(Math.floor))))];
    const dark = await page.evaluate(
      ({ xs, y }) => {
        const c = document.getElementById('lanes') as HTMLCanvasElement;
        const ctx = c.getContext('2d')!;
        const dpr = (window as any).viewer.geometry().dpr;
        return xs.filter((x: number) => {
          const [r, g, b] = ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data;
          return 0.3 * r! + 0.59 * g! + 0.11 * b! < 90;
        }).length;
      },
      { xs: claimXs, y: leaderLane + geo.laneH - 2 },
    );
    expect(dark).toBeGreaterThanOrEqual(Math.floor(claimXs.length * 0.9));
    // Hovering the requeue marker shows the handoff note.
    const box = (await page.$('#lanes'))!;
    const rect = (await box.boundingBox())!;
    await page.mouse.move(rect.x + xRequeue + 2, rect.y + agentRow + geo.agentH - 3);
    expect(await page.isVisible('#tooltip')).toBe(true);
    const tip = await page.textContent('#tooltip');
    expect(tip).toContain('agent a2: stale');
    expect(tip).toContain(requeue.note);
    // Hovering a claim tick on the leader's lane names the token and the fate of its write.
    await page.mouse.move(rect.x + claimXs[5]! + 0.5, rect.y + leaderLane + geo.laneH - 2);
    expect(await page.textContent('#tooltip')).toMatch(/claimed token 1 → write accepted/);

    // The handoffs list: every requeue/release with its note and what became of the task; a click jumps there.
    const handoffs = await page.evaluate(() => (window as any).viewer.handoffs());
    const agentLines = text.split('\n').flatMap((l) => (l.includes('"kind":"agent"') ? [JSON.parse(l)] : []));
    const expectedHandoffs = agentLines.reduce(
      (n, l) => n + (l.event === 'release' ? 1 : l.event === 'sweep' && l.applied ? (l.detail?.requeued?.length ?? 0) : 0),
      0,
    );
    expect(handoffs.length).toBe(expectedHandoffs);
    expect(handoffs.map((h: { kind: string }) => h.kind)).toEqual(['requeue']);
    const items = await page.$$eval('#handoffs li[data-kind]', (els) =>
      els.map((e) => ({ kind: e.getAttribute('data-kind'), task: e.getAttribute('data-task'), agent: e.getAttribute('data-agent'), text: e.textContent })),
    );
    expect(items.length).toBe(handoffs.length);
    expect(items[0]).toMatchObject({ kind: 'requeue', task: requeue.task, agent: 'a2' });
    expect(items[0]!.text).toContain(requeue.note);
    expect(items[0]!.text).toMatch(/claimed again by a\d \(token 2\)/);
    await page.click('#first');
    await page.click('#handoffs li[data-kind="requeue"]');
    const at = await page.evaluate(() => (window as any).viewer.transition().t);
    expect(at).toBeLessThanOrEqual(requeue.t);
    expect(at).toBeGreaterThan(requeue.t - 500);
    const [from, to] = await page.evaluate(() => (window as any).viewer.view());
    expect(from).toBeLessThan(requeue.t);
    expect(to).toBeGreaterThan(requeue.t);
    const shot = join(ARTIFACTS, 'viewer-agents-run.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`viewer screenshot (agents run): ${shot}`);
  });

  it('marks an agent retired from the index, greys its lane until it registers again, and lists the retirement', async () => {
    // A real `fenced-leader sim --seed 24 --agents 3 --duration 30s` run, cut at 7 s (store messages and `send` work
    // lines dropped): a2 crashes at 2.55 s, n3's sweep marks it stale, then retires it from the index at epoch 2;
    // it restarts and registers again (incarnation 2) at 5.18 s.
    const text = readFileSync(new URL('./retirementRun.jsonl', import.meta.url), 'utf8');
    const indexLines = text.split('\n').flatMap((l) => (l.includes('"event":"index"') ? [JSON.parse(l)] : []));
    const retiredLine = indexLines.find((l) => l.detail.removed.length > 0)!;
    expect(retiredLine.detail.removed.map((r: { agent: string }) => r.agent)).toEqual(['a2']);
    const backLine = indexLines.find((l) => l.t > retiredLine.t && l.detail.added.some((a: { agent: string }) => a.agent === 'a2'))!;
    const tRet = retiredLine.t as number;
    const tBack = backLine.t as number;
    const { page } = await open(context, buildViewerHtml(text, 'retirement run (seed 24)'), 'retirement-run');
    expect(await page.$$eval('.lane-label[data-agent]', (els) => els.map((e) => e.getAttribute('data-agent')))).toEqual(['a1', 'a2', 'a3']);
    const retirements = await page.evaluate(() => (window as any).viewer.retirements());
    expect(retirements).toMatchObject([{ t: tRet, agent: 'a2', by: 'n3', sweep: true, epoch: 2, state: 'stale', incarnation: 1, until: tBack }]);
    expect(await page.evaluate((t) => (window as any).viewer.indexedAt('a2', t), tRet + 1)).toBe(false);
    expect(await page.evaluate((t) => (window as any).viewer.indexedAt('a2', t), tBack + 1)).toBe(true);

    // The canvas: a retirement marker at the retirement, a2's lane greyed from there until it registered again.
    const geo = await page.evaluate(() => (window as any).viewer.geometry());
    const row = geo.agentTops[1] as number;
    const xAt = (t: number) => page.evaluate((tt) => (window as any).viewer.xOf(tt), t) as Promise<number>;
    const xRet = await xAt(tRet);
    const xBack = await xAt(tBack);
    expect(xBack - xRet).toBeGreaterThan(30);
    const RETIRE = [134, 46, 156];
    const RETIRED = [222, 226, 230];
    expect(await countColour(page, xRet - 5, row - 3, 11, geo.agentH + 5, RETIRE)).toBeGreaterThan(40);
    expect(await countColour(page, (await xAt(2000)) - 20, row - 3, 40, geo.agentH + 5, RETIRE)).toBe(0);
    // The other agents' lanes carry no retirement marker.
    expect(await countColour(page, xRet - 5, geo.agentTops[0], 11, geo.agentH, RETIRE)).toBe(0);
    expect(await countColour(page, xRet - 5, geo.agentTops[2], 11, geo.agentH, RETIRE)).toBe(0);
    expect(await countColour(page, xRet + 3, row + 4, xBack - xRet - 6, 6, RETIRED)).toBeGreaterThan((xBack - xRet - 6) * 2);
    expect(await countColour(page, xRet - 40, row, 36, geo.agentH, RETIRED)).toBe(0);
    expect(await countColour(page, xBack + 4, row, 40, geo.agentH, RETIRED)).toBe(0);
    expect(await countColour(page, xRet + 3, geo.agentTops[2] as number, xBack - xRet - 6, geo.agentH, RETIRED)).toBe(0);
    expect(await page.textContent('#legend')).toContain('retired from the index');
    // Hovering the greyed lane says so, with who retired it at which epoch; the marker's own note too.
    // The agent lanes sit at the bottom of the canvas, below the fold of a 1000 px viewport: bring them into view.
    await page.$eval('#lanes', (el) => el.scrollIntoView({ block: 'end' }));
    const rect = (await (await page.$('#lanes'))!.boundingBox())!;
    await page.mouse.move(rect.x + (xRet + xBack) / 2, rect.y + row + geo.agentH / 2);
    expect(await page.textContent('#tooltip')).toMatch(/agent a2: stale \(incarnation 1\), NOT INDEXED: retired by n3's sweep at epoch 2/);
    await page.mouse.move(rect.x + xRet + 0.5, rect.y + row + geo.agentH / 2);
    expect(await page.textContent('#tooltip')).toContain("a2 retired from the agent index by n3's sweep at epoch 2 (record stale, incarnation 1; no task claimed or reserved)");

    // The index changes list, next to the handoffs: who retired a2 at which epoch, its state, when it came back.
    const items = await page.$$eval('#index-changes li[data-kind="retire"]', (els) => els.map((e) => ({ agent: e.getAttribute('data-agent'), by: e.getAttribute('data-by'), text: e.textContent })));
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ agent: 'a2', by: 'n3' });
    expect(items[0]!.text).toMatch(/retired agent a2 by n3's sweep at epoch 2 · record stale \(incarnation 1\) → registered again at 5181\.0 ms \(incarnation 2\)/);
    expect(await page.isVisible('#index-changes')).toBe(true);
    await page.click('#first');
    await page.click('#index-changes li[data-kind="retire"]');
    const at = await page.evaluate(() => (window as any).viewer.transition().t);
    expect(at).toBeLessThanOrEqual(tRet);
    expect(at).toBeGreaterThan(tRet - 500);
    await page.evaluate((t) => (window as any).viewer.seekTime(t), (tRet + tBack) / 2);
    expect(await page.textContent('#agent-states [data-agent="a2"]')).toContain('not indexed (retired by n3');
    const shot = join(ARTIFACTS, 'viewer-retirement-run.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`viewer screenshot (retirement run): ${shot}`);

    // Cut before a2 came back, with an end-of-run agent summary in the simulator's `final` format: a2 stays greyed to
    // the end and the summary names it as no longer indexed.
    const cutAt = tRet + 150;
    const cut = text.split('\n').filter((l) => l !== '' && (l.startsWith('{"kind":"meta"') || JSON.parse(l).t <= cutAt));
    const agentsFinal = {
      a1: { state: 'active', incarnation: 1, alive: true, working: [], indexed: true },
      a2: { state: 'stale', incarnation: 1, alive: false, working: [], indexed: false },
      a3: { state: 'active', incarnation: 1, alive: true, working: [], indexed: true },
    };
    cut.push(JSON.stringify({ t: cutAt, kind: 'agent', node: 'env', event: 'final', detail: { tasks: {}, agents: agentsFinal } }));
    const cutPage = (await open(context, buildViewerHtml(cut.join('\n'), 'retirement run, cut before a2 came back'), 'retirement-cut')).page;
    expect(await cutPage.textContent('#final-agents')).toMatch(/Agents at the end: 3 records, 1 no longer indexed: a2 \(stale, incarnation 1\)\./);
    expect(await cutPage.$$eval('#final-agents [data-unindexed]', (els) => els.map((e) => e.getAttribute('data-unindexed')))).toEqual(['a2']);
    expect(await cutPage.textContent('#index-changes')).toContain('not indexed again in this trace');
    const cutGeo = await cutPage.evaluate(() => (window as any).viewer.geometry());
    const xEnd = (await cutPage.evaluate((t) => (window as any).viewer.xOf(t), cutAt)) as number;
    expect(await countColour(cutPage, xEnd - 12, cutGeo.agentTops[1] + 4, 10, 6, RETIRED)).toBeGreaterThan(20);
  });

  it('runs no markup from a crafted trace (node ids, states, event types, violations, agents, meta, title)', async () => {
    const P = (tag: string) =>
      `<img class="xss" src="data:," onload="(window.__xss=window.__xss||[]).push('${tag}')"></script><script>(window.__xss=window.__xss||[]).push('s-${tag}')</script><!--`;
    const lines = [
      { kind: 'meta', format: TRACE_FORMAT, seed: P('seed'), nodes: [P('n')], options: { [P('k')]: P('v'), o: { [P('nk')]: P('nv') } }, violatedAssumptions: [P('a')] },
      { t: 0, kind: 'transition', node: P('n'), from: P('from'), to: P('to'), event: P('ev'), epoch: 1 },
      { t: 10, kind: 'resource', node: P('n'), token: 1, accepted: false, highWater: 2 },
      { t: 12, kind: 'fault', fault: P('f'), node: P('fn'), detail: { x: P('fd') } },
      { t: 15, kind: 'violation', checker: P('c'), message: P('m'), nodes: [P('vn')], expected: false },
      { t: 17, kind: 'agent', event: 'register', agent: P('ag'), node: P('ag'), incarnation: 1 },
      { t: 18, kind: 'agent', event: 'claim', node: P('ag'), agent: P('ag'), task: P('task'), token: 2 },
      { t: 19, kind: 'agent', event: 'sweep', node: P('n'), epoch: 1, detail: { marked: [{ agent: P('ag'), incarnation: 1, beat: P('b') }], requeued: [{ task: P('rt'), from: P('ag'), token: 3, note: P('note') }] } },
      { t: 21, kind: 'agent', event: 'index', node: P('ix'), detail: { sweep: true, removed: [{ agent: P('ag'), claims: [P('cl')], reserved: [P('rs')], state: P('st'), incarnation: 1 }] } },
      { t: 23, kind: 'agent', event: 'final', node: 'env', detail: { tasks: { [P('ft')]: { state: P('fs'), claimedBy: P('fb') } }, agents: { [P('fa')]: { indexed: false, state: P('fas') } } } },
    ];
    const { page, problems } = await open(context, buildViewerHtml(lines, P('title')), 'crafted');
    await page.click('#next');
    await page.click('#violations li');
    await page.$eval('#lanes', (el) => el.scrollIntoView({ block: 'end' }));
    const box = (await (await page.$('#lanes'))!.boundingBox())!;
    for (let x = 120; x < box.width; x += 120) for (let y = 5; y < box.height; y += 20) await page.mouse.move(box.x + x, box.y + y);
    expect(await page.evaluate(() => (window as any).__xss ?? [])).toEqual([]);
    expect(await page.$$eval('img.xss', (e) => e.length)).toBe(0);
    expect(await problems()).toEqual([]);
  });

  it("after every step, each node's state and the highlighted chart states equal the trace (simulator run and live recording)", async () => {
    // A simulator trace: its transition lines, in time order.
    const sim = (await unsafeRunOnce()).lines;
    const simTransitions = sim
      .flatMap((l, i) => (l.kind === 'transition' ? [{ ...l, i }] : []))
      .sort((a, b) => a.t - b.t || a.i - b.i)
      .map((l) => ({ node: l.node, from: l.from, to: l.to, event: l.event }));
    await checkSteps(context, buildViewerHtml(sim), simTransitions);

    // A live recording of three electors (inspect lines only): the root snapshots' state changes.
    const clock = new TestClock();
    const recorder = createInspectRecorder({ clock });
    const store = new MemoryLeaseStore();
    const electors = ['alpha', 'beta', 'gamma'].map((nodeId) =>
      createElector({ election: 'b', nodeId, store, clock, leaseDurationMs: 400, renewDeadlineMs: 250, retryPeriodMs: 50, inspect: (e) => recorder.recordFor(nodeId, e, clock.now()) }),
    );
    for (const e of electors) e.start();
    await clock.advance(400);
    const resigned = electors.find((e) => e.isLeader())!.resign();
    await clock.advance(600);
    await resigned;
    const stopped = Promise.all(electors.map((e) => e.stop()));
    await clock.advance(600);
    await stopped;
    const liveText = recorder.toJSONL();
    const last = new Map<string, string>();
    const liveTransitions: { node: string; from: string; to: string; event: string }[] = [];
    for (const l of recorder.lines()) {
      const ev = l.event as { type: string; sessionId: string; rootId?: string; snapshot?: { value?: unknown }; event?: { type: string } };
      if (ev.type !== '@xstate.snapshot' || ev.sessionId !== ev.rootId || ev.snapshot?.value === undefined) continue;
      const path = stateValueToPath(ev.snapshot.value);
      const previous = last.get(l.node);
      if (previous !== undefined && previous !== path) liveTransitions.push({ node: l.node, from: previous, to: path, event: ev.event!.type });
      last.set(l.node, path);
    }
    expect(liveTransitions.length).toBeGreaterThan(5);
    const html = buildViewerHtml(liveText);
    expect(html).not.toMatch(/sourceMappingURL|@import|url\(\s*['"]?(https?:|\/\/)|\b(src|href)\s*=\s*["']?(https?:|\/\/)/i);
    await checkSteps(context, html, liveTransitions);
  });

  it('shades a resource-delay span, names its store cut, and marks the delayed writes the resource rejected', async () => {
    // A real `fenced-leader sim --seed 4 --seeds 1 --duration 20s` run, cut at 11 s (store messages and `send` work
    // lines dropped): at 8.43 s a resource delay hits the leader n1 (its writes sit 2122 ms in the resource-link queue)
    // with a store cut; n3 takes over at epoch 2, and n1's three queued writes land at ~10.6 s and are rejected as stale.
    const text = readFileSync(new URL('./resourceDelayRun.jsonl', import.meta.url), 'utf8');
    const lines = text.split('\n').flatMap((l) => (l ? [JSON.parse(l)] : []));
    const delayedLines = lines.filter((l) => l.kind === 'resource' && typeof l.delayedMs === 'number');
    expect(delayedLines.length).toBe(3);
    const delayFault = lines.find((l) => l.kind === 'fault' && l.fault === 'resource-delay')!;
    expect(delayFault).toMatchObject({ node: 'n1', detail: { target: 'leader' } });
    const { page } = await open(context, buildViewerHtml(text, 'resource delay (seed 4)'), 'resource-delay-run');

    const legend = await page.textContent('#legend');
    expect(legend).toContain('resource link delayed');
    expect(legend).toContain('store cut (with resource delay)');
    expect(legend).toContain('delayed write');
    const faults = await page.evaluate(() => (window as any).viewer.faults());
    expect(faults).toContainEqual({ node: 'n1', kind: 'resource-delay', label: 'resource link delayed', from: 8430, to: 8430 + 724 });
    expect(faults).toContainEqual(expect.objectContaining({ node: 'n1', kind: 'partition', label: 'store cut (with resource delay)', from: 8430 }));
    const delayed = await page.evaluate(() => (window as any).viewer.delayedWrites());
    expect(delayed).toEqual(
      delayedLines.map((l) => ({ t: l.t, node: 'n1', token: l.token, accepted: false, delayedMs: l.delayedMs, sentT: l.t - l.delayedMs })),
    );
    expect(await page.textContent('#summary')).toContain('3 delayed in the resource link');

    // What the canvas shows: the delay's own colour along n1's lane over the span (not on n2's), and on the resource
    // lane an outline at each delayed write and a line back to its send time; none where no write was delayed.
    const RDELAY = [12, 133, 153];
    const geo = await page.evaluate(() => (window as any).viewer.geometry());
    const xAt = (t: number) => page.evaluate((tt) => (window as any).viewer.xOf(tt), t) as Promise<number>;
    const [xa, xb] = [await xAt(8430), await xAt(8430 + 724)];
    expect(await countColour(page, xa + 2, geo.laneTops[0] + 3, xb - xa - 4, 3, RDELAY)).toBeGreaterThan((xb - xa - 4) * 2);
    expect(await countColour(page, xa + 2, geo.laneTops[1], xb - xa - 4, geo.laneH, RDELAY)).toBe(0);
    const first = delayed[0] as { t: number; sentT: number };
    const xArr = await xAt(first.t);
    expect(await countColour(page, xArr - 5, geo.resTop, 10, 30, RDELAY)).toBeGreaterThan(20);
    const xMid = await xAt((first.sentT + first.t) / 2);
    expect(await countColour(page, xMid - 10, geo.resTop, 20, 30, RDELAY)).toBeGreaterThan(15);
    expect(await countColour(page, (await xAt(4000)) - 20, geo.resTop, 40, 30, RDELAY)).toBe(0);

    // Hovering: the rejected write says it was delayed; n1's lane names the delay and the cut.
    const rect = (await (await page.$('#lanes'))!.boundingBox())!;
    await page.mouse.move(rect.x + xArr + 0.5, rect.y + geo.resTop + 15);
    const tip = await page.textContent('#tooltip');
    expect(tip).toContain('n1 wrote with token 1: REJECTED');
    expect(tip).toMatch(/DELAYED: sat 2122 ms in the resource-link queue \(sent at /);
    await page.mouse.move(rect.x + (xa + xb) / 2, rect.y + geo.laneTops[0] + 12);
    const laneTip = await page.textContent('#tooltip');
    expect(laneTip).toContain('resource link delayed');
    expect(laneTip).toContain('store cut (with resource delay)');
    await page.mouse.move(rect.x + xArr + 0.5, rect.y + geo.resTop + 15);
    const shot = join(ARTIFACTS, 'viewer-resource-delay.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`viewer screenshot (resource delay): ${shot}`);
  });

  it('loads a large trace (10 nodes × 10 simulated minutes) in reasonable time', async () => {
    const lines = syntheticTrace({ nodes: 10, durationMs: 600_000, seed: 7, unsafe: true });
    const built = performance.now();
    const html = buildViewerHtml(lines, 'synthetic 10 nodes × 10 min');
    const buildMs = performance.now() - built;
    const { page, loadMs } = await open(context, html, 'synthetic-large');
    const count = await page.evaluate(() => (window as any).viewer.count);
    const lanes = await page.$$eval('.lane-label[data-node]', (els) => els.length);
    expect(lanes).toBe(10);
    const stepStart = performance.now();
    for (let k = 0; k < 20; k++) await page.click('#next');
    const stepMs = (performance.now() - stepStart) / 20;
    console.log(
      `large trace: ${lines.length} lines, ${count} transitions, HTML ${(html.length / 1e6).toFixed(2)} MB built in ${buildMs.toFixed(0)} ms; ` +
        `browser load ${loadMs.toFixed(0)} ms; ${stepMs.toFixed(1)} ms per step`,
    );
    expect(loadMs).toBeLessThan(20_000);
    await page.screenshot({ path: join(ARTIFACTS, 'viewer-large.png') });

    // The same run with every leader's token claims (work lines) and three worker agents: their lanes, ~2k task
    // claims and completions, heartbeats, sweeps with requeues and the handoffs list must not make it sluggish.
    const withAgents = syntheticTrace({ nodes: 10, durationMs: 600_000, seed: 7, unsafe: true, work: true, agents: 3 });
    const builtA = performance.now();
    const htmlA = buildViewerHtml(withAgents, 'synthetic 10 nodes × 10 min, work and 3 agents');
    const buildAMs = performance.now() - builtA;
    const loaded = await open(context, htmlA, 'synthetic-large-agents');
    expect(await loaded.page.$$eval('.lane-label[data-agent]', (els) => els.length)).toBe(3);
    const sweeps = withAgents.filter((l) => l.kind === 'agent' && l.event === 'sweep');
    const requeues = sweeps.reduce((n, l) => n + ((l as { detail?: { requeued?: unknown[] } }).detail?.requeued?.length ?? 0), 0);
    expect(requeues).toBeGreaterThan(5);
    expect(await loaded.page.$$eval('#handoffs li[data-kind="requeue"]', (els) => els.length)).toBe(requeues);
    const claimCount = await loaded.page.evaluate(() => (window as any).viewer.claims().length);
    expect(claimCount).toBe(withAgents.filter((l) => l.kind === 'work' && l.phase === 'claim').length);
    console.log(
      `large trace with work and agents: ${withAgents.length} lines, ${claimCount} token claims, ${requeues} requeues, HTML ${(htmlA.length / 1e6).toFixed(2)} MB ` +
        `built in ${buildAMs.toFixed(0)} ms; browser load ${loaded.loadMs.toFixed(0)} ms`,
    );
    expect(loaded.loadMs).toBeLessThan(20_000);
    await loaded.page.screenshot({ path: join(ARTIFACTS, 'viewer-large-agents.png'), fullPage: true });
  });
});

/** Steps through every transition of the page; each step's transition, node states and highlighted states match `expected`. */
async function checkSteps(context: BrowserContext, html: string, expected: { node: string; from: string; to: string; event: string }[]): Promise<void> {
  const { page, problems } = await open(context, html, 'steps');
  const shown = await page.evaluate(() => {
    const v = (window as any).viewer;
    const out: { tr: any; st: Record<string, string>; active: string[]; ev: string }[] = [];
    for (let i = 0; i < v.count; i++) {
      v.setStep(i);
      const st: Record<string, string> = {};
      for (const n of v.nodes) st[n] = v.stateOf(n);
      const active = Array.from(document.querySelectorAll('#chart .state.atomic.active, #chart .state.final.active')).map((g) => g.getAttribute('data-state')!);
      out.push({ tr: v.transition(i), st, active: [...new Set(active)].sort(), ev: document.getElementById('step-event')!.textContent! });
    }
    return out;
  });
  // Zooming and panning load nothing either.
  await page.click('#last');
  const box = (await (await page.$('#lanes'))!.boundingBox())!;
  await page.mouse.move(box.x + 400, box.y + 40);
  await page.mouse.wheel(0, -300);
  expect(await problems()).toEqual([]);
  await page.close();
  expect(shown.length).toBe(expected.length);
  const state: Record<string, string> = {};
  for (const t of expected) if (!(t.node in state)) state[t.node] = t.from;
  const uncharted = new Set(['start', 'crashed']);
  expected.forEach((t, i) => {
    state[t.node] = t.to;
    const s = shown[i]!;
    expect({ i, node: s.tr.node, from: s.tr.from, to: s.tr.to, event: s.ev }).toEqual({ i, node: t.node, from: t.from, to: t.to, event: t.event || '(eventless)' });
    expect(s.st).toEqual(state);
    expect(s.active).toEqual([...new Set(Object.values(state).filter((x) => !uncharted.has(x)))].sort());
  });
}
