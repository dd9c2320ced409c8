import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticTrace } from '../../src/inspect/synthetic.js';
import { buildViewerHtml } from '../../src/inspect/viewer.js';
import { unsafeRunTrace } from './unsafeRun.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) {
  if (process.env.CI === 'true') throw new Error(`browser tests need ${CHROMIUM} (Debian's chromium) under CI`);
  console.warn(`\n!!! SKIPPING browser tests: ${CHROMIUM} not found (install Debian's chromium; CI=true makes this fatal) !!!\n`);
}

const ARTIFACTS = resolve('artifacts', 'browser');

async function open(context: BrowserContext, html: string, name: string): Promise<{ page: Page; loadMs: number; path: string }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.html`);
  writeFileSync(path, html);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('request', (req) => {
    if (!req.url().startsWith('file:') && !req.url().startsWith('data:')) errors.push(`network request: ${req.url()}`);
  });
  const started = performance.now();
  await page.goto(pathToFileURL(path).href);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const loadMs = performance.now() - started;
  expect(errors).toEqual([]);
  return { page, loadMs, path };
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
    const { lines, source } = await unsafeRunTrace();
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
    const shot = join(ARTIFACTS, 'viewer-agents-run.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`viewer screenshot (agents run): ${shot}`);
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
  });
});
