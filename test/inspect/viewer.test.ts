import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTrace, parseTrace, TRACE_FORMAT, type TraceLine } from '../../sim/trace.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { run } from '../../src/cli/view.js';
import { createElector } from '../../src/createElector.js';
import { createInspectRecorder } from '../../src/inspect/recorder.js';
import { syntheticTrace } from '../../src/inspect/synthetic.js';
import { AGENT_EVENTS, buildViewerHtml, buildViewerModel, stateValueToPath, TraceInputError } from '../../src/inspect/viewer.js';
import { TestClock } from '../../src/TestClock.js';

const hand: TraceLine[] = [
  { kind: 'meta', format: TRACE_FORMAT, seed: 9, nodes: ['a', 'b'], options: { leaseDurationMs: 1000 }, violatedAssumptions: [] },
  { t: 5, kind: 'transition', node: 'a', from: 'follower.reading', to: 'candidate', event: 'lease.read', epoch: null },
  { t: 7, kind: 'transition', node: 'a', from: 'candidate', to: 'leader.holding', event: 'lease.written', epoch: 1 },
  { t: 8, kind: 'resource', node: 'a', token: 1, accepted: true, highWater: 1 },
  { t: 10, kind: 'fault', fault: 'partition', node: 'a' },
  { t: 12, kind: 'fault', fault: 'clock-jump', node: 'b', detail: { jumpMs: 500 } },
  { t: 20, kind: 'fault', fault: 'pause', node: 'b', durationMs: 30 },
  { t: 40, kind: 'fault', fault: 'heal', node: 'a' },
  { t: 41, kind: 'resource', node: 'a', token: 0, accepted: false, highWater: 1 },
  { t: 42, kind: 'violation', checker: 'one-leader-per-epoch', message: 'a and b both hold epoch 1', nodes: ['a', 'b'] },
  { t: 3, kind: 'transition', node: 'b', from: 'follower.reading', to: 'follower.waiting', event: 'lease.read', epoch: null },
  { t: 4, kind: 'store', node: 'b', phase: 'request', op: 'read', requestId: 1 },
];

describe('viewer model', () => {
  it('dictionary-codes transitions in time order and pairs faults', () => {
    const model = buildViewerModel(hand);
    expect(model.nodes).toEqual(['a', 'b']);
    expect(model.tr.t).toEqual([3, 5, 7]);
    expect(model.tr.n.map((n) => model.nodes[n])).toEqual(['b', 'a', 'a']);
    expect(model.tr.s.map((s) => model.states[s])).toEqual(['follower.waiting', 'candidate', 'leader.holding']);
    expect(model.tr.ep).toEqual([-1, -1, 1]);
    expect(model.faults).toEqual([
      { n: 0, k: 'partition', a: 10, b: 40, d: '' },
      { n: 1, k: 'clock-jump', a: 12, b: 12, d: '{"jumpMs":500}' },
      { n: 1, k: 'pause', a: 20, b: 50, d: '' },
    ]);
    expect(model.res.ok).toEqual([1, 0]);
    expect(model.violations).toMatchObject([{ t: 42, checker: 'one-leader-per-epoch', expected: false }]);
    expect(model.meta).toMatchObject({ seed: 9, storeMessages: 1, skipped: 0, source: 'trace' });
    expect([model.start, model.end]).toEqual([3, 42]);
  });

  it('carries token claims (with the fate of their write) and agent lanes', () => {
    const lines: TraceLine[] = [
      { kind: 'meta', format: TRACE_FORMAT, seed: 2, nodes: ['n1', 'n2', 'w1', 'w2'], options: {}, violatedAssumptions: [] },
      { t: 1, kind: 'transition', node: 'n1', from: 'candidate', to: 'leader.holding', event: 'lease.written', epoch: 1 },
      { t: 2, kind: 'work', node: 'n1', phase: 'start', token: 1 },
      { t: 3, kind: 'work', node: 'n1', phase: 'claim', token: 1, deadlineAt: 600 },
      { t: 3.5, kind: 'work', node: 'n1', phase: 'send', token: 1 },
      { t: 4, kind: 'resource', node: 'n1', token: 1, accepted: true, highWater: 1, claimedT: 3 },
      { t: 5, kind: 'work', node: 'n1', phase: 'claim', token: 1 },
      { t: 6, kind: 'transition', node: 'n2', from: 'candidate', to: 'leader.holding', event: 'lease.written', epoch: 2 },
      { t: 7, kind: 'resource', node: 'n2', token: 2, accepted: true, highWater: 2 },
      { t: 9, kind: 'resource', node: 'n1', token: 1, accepted: false, highWater: 2, claimedT: 5 },
      { t: 0, kind: 'agent', node: 'env', event: 'submit', detail: { tasks: ['t1'] } },
      { t: 1, kind: 'agent', node: 'w1', event: 'register', agent: 'w1', incarnation: 1, beat: 0 },
      { t: 1.5, kind: 'agent', node: 'w2', event: 'register', agent: 'w2', incarnation: 1, beat: 0 },
      { t: 2, kind: 'agent', node: 'w1', event: 'claim', task: 't1', agent: 'w1', token: 1, incarnation: 1 },
      { t: 3, kind: 'agent', node: 'w1', event: 'heartbeat', agent: 'w1', incarnation: 1, beat: 1 },
      { t: 4, kind: 'fault', fault: 'crash', node: 'w1' },
      { t: 6, kind: 'agent', node: 'n1', event: 'sweep', applied: false, epoch: 1, detail: { conflict: 'lease', leaseChecked: true } },
      {
        t: 8,
        kind: 'agent',
        node: 'n2',
        event: 'sweep',
        applied: true,
        epoch: 2,
        detail: { epochs: [2], marked: [{ agent: 'w1', incarnation: 1, beat: 1 }], requeued: [{ task: 't1', from: 'w1', token: 1 }] },
      },
      { t: 8.5, kind: 'fault', fault: 'restart', node: 'w1' },
      { t: 9, kind: 'agent', node: 'w2', event: 'claim', task: 't1', agent: 'w2', token: 2, incarnation: 1 },
      { t: 10, kind: 'agent', node: 'w2', event: 'complete', task: 't1', agent: 'w2', token: 2, detail: { claimToken: 2, claimedBy: 'w2', wasState: 'claimed' } },
      { t: 11, kind: 'agent', node: 'w2', event: 'deregister', agent: 'w2', incarnation: 1, beat: 3 },
      { t: 12, kind: 'agent', node: 'env', event: 'final', detail: {} },
    ];
    const model = buildViewerModel(lines);
    // Agents get lanes of their own, not election-node lanes; a fault on an agent lands on its lane.
    expect(model.nodes).toEqual(['n1', 'n2']);
    expect(model.agents.names).toEqual(['w1', 'w2']);
    expect(model.faults).toEqual([{ n: -2, g: 0, k: 'crash', a: 4, b: 8.5, d: '' }]);
    // Claims, linked to their writes: the second claim (t=5, token 1) is stale by the time its write arrives.
    expect(model.work).toEqual({ t: [2, 3, 5], n: [0, 0, 0], ph: [1, 0, 0], tok: [1, 1, 1], w: [-1, 1, 0] });
    expect(model.res.ct).toEqual([3, -1, 5]);
    // State bands, events, handoff notes.
    const spans = model.agents.spans.map((s) => [model.agents.names[s.g], ['active', 'stale', 'gone'][s.s], s.a, s.b]);
    expect(spans).toEqual([
      ['w1', 'active', 1, 8],
      ['w2', 'active', 1.5, 11],
      ['w1', 'stale', 8, 12],
      ['w2', 'gone', 11, 12],
    ]);
    const ev = model.agents.ev.k.map((k, i) => `${model.agents.names[model.agents.ev.g[i]!]}:${AGENT_EVENTS[k]}`);
    expect(ev).toEqual(['w1:register', 'w2:register', 'w1:claim', 'w1:stale', 'w1:requeue', 'w2:claim', 'w2:complete', 'w2:deregister']);
    const requeue = model.agents.ev.k.indexOf(AGENT_EVENTS.indexOf('requeue'));
    expect(model.agents.tasks[model.agents.ev.task[requeue]!]).toBe('t1');
    expect(model.agents.notes[model.agents.ev.note[requeue]!]).toBe('handoff: t1 requeued by n2 at epoch 2 from w1 (claim token 1) — w1 is stale');
    expect(model.agents.beats).toEqual({ t: [3], g: [0] });
    expect(model.agents.sweeps).toEqual({ t: [6, 8], n: [0, 1], ok: [0, 1], ep: [1, 2] });
    expect(model.end).toBe(12);
  });

  it('extracts retirements from the `index` lines of a real agents run: who retired the agent, at which epoch, its state, and until when', async () => {
    const { simulateAgents } = await import('../../sim/agents.js');
    const { generateScenario } = await import('../../sim/scenario.js');
    let trace: TraceLine[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      trace = parseTrace(formatTrace((await simulateAgents(generateScenario(seed, { agents: 3, durationMs: 30_000 }), { traceStore: false })).trace));
      if (trace.some((l) => l.kind === 'agent' && l.event === 'index' && ((l.detail?.removed as unknown[] | undefined) ?? []).length > 0)) break;
    }
    const indexLines = trace.filter((l): l is TraceLine & { kind: 'agent' } => l.kind === 'agent' && l.event === 'index');
    const removals = indexLines.flatMap((l) => ((l.detail?.removed ?? []) as { agent: string; state: string; incarnation: number }[]).map((r) => ({ line: l, r })));
    expect(removals.length).toBeGreaterThan(0);
    const model = buildViewerModel(trace);
    // No lane for the orchestrator that wrote a retirement: agents only.
    expect(model.agents.names).toEqual(['a1', 'a2', 'a3']);
    expect(model.agents.ev.k.every((k) => k >= 0)).toBe(true);
    expect(model.agents.retirements.length).toBe(removals.length);
    for (const [i, { line, r }] of removals.entries()) {
      const got = model.agents.retirements[i]!;
      const lease = line.detail?.lease as { epoch: number } | undefined;
      expect(got).toMatchObject({ t: line.t, g: model.agents.names.indexOf(r.agent), by: line.node, sweep: true, epoch: lease!.epoch, state: r.state, inc: r.incarnation });
      // Until the agent's next registration put it back into the index.
      const back = indexLines.find((l) => l.t > line.t && ((l.detail?.added ?? []) as { agent: string }[]).some((a) => a.agent === r.agent));
      expect(got.until).toBe(back ? back.t : model.end);
      expect(got.back?.t).toBe(back?.t);
    }
    // Each retirement is an agent event (drawn as a marker, hovered for its note).
    const retire = AGENT_EVENTS.indexOf('retire');
    expect(model.agents.ev.k.filter((k) => k === retire).length).toBe(removals.length);
    const first = model.agents.ev.k.indexOf(retire);
    const { line, r } = removals[0]!;
    expect(model.agents.notes[model.agents.ev.note[first]!]).toBe(
      `${r.agent} retired from the agent index by ${line.node}'s sweep at epoch ${(line.detail!.lease as { epoch: number }).epoch} (record ${r.state}, incarnation ${r.incarnation}; no task claimed or reserved)`,
    );
    // Every record the final line lists is counted; those no longer indexed are named.
    const final = trace.find((l) => l.kind === 'agent' && l.event === 'final') as TraceLine & { kind: 'agent' };
    const records = final.detail!.agents as Record<string, { indexed: boolean }>;
    expect(model.agents.final?.agents).toBe(Object.keys(records).length);
    expect(model.agents.final?.unindexed.map((u) => u.agent)).toEqual(Object.keys(records).filter((a) => !records[a]!.indexed));
    // An event the viewer has never heard of is skipped.
    const future = buildViewerModel([...trace, { t: 1, kind: 'agent', node: 'n1', event: 'someday', detail: { x: 1 } } as unknown as TraceLine]);
    expect(future.agents.ev).toEqual(model.agents.ev);
  }, 60_000);

  it('keeps retirements with the tasks still held, re-indexings by a sweep, and agents never indexed again', () => {
    const lines = [
      { kind: 'meta', format: TRACE_FORMAT, seed: 1, nodes: ['n1', 'w1', 'w2'], options: {}, violatedAssumptions: [] },
      { t: 1, kind: 'transition', node: 'n1', from: 'candidate', to: 'leader.holding', event: 'lease.written', epoch: 3 },
      { t: 2, kind: 'agent', node: 'w1', event: 'register', agent: 'w1', incarnation: 1, beat: 0 },
      { t: 2, kind: 'agent', node: 'w1', event: 'index', detail: { sweep: false, removed: [], added: [{ agent: 'w1', state: 'active', incarnation: 1 }], size: 1 } },
      { t: 3, kind: 'agent', node: 'w2', event: 'index', detail: { sweep: false, removed: [], added: [{ agent: 'w2', state: 'active', incarnation: 1 }], size: 2 } },
      {
        t: 20,
        kind: 'agent',
        node: 'n1',
        event: 'index',
        detail: {
          sweep: true,
          removed: [
            { agent: 'w1', state: 'stale', incarnation: 1, claims: ['t1'], reserved: ['t2', 't3'] },
            { agent: 'w2', state: 'active', incarnation: 1, claims: [], reserved: [] },
          ],
          added: [],
          size: 0,
          lease: { holder: 'n1', epoch: 3 },
        },
      },
      { t: 25, kind: 'agent', node: 'n1', event: 'index', detail: { sweep: true, removed: [], added: [{ agent: 'w2', state: 'active', incarnation: 1 }], size: 1, lease: { holder: 'n1', epoch: 3 } } },
      {
        t: 40,
        kind: 'agent',
        node: 'env',
        event: 'final',
        detail: {
          tasks: { t1: { state: 'claimed', claimedBy: 'w1' } },
          agents: { w1: { state: 'stale', incarnation: 1, alive: false, working: [], indexed: false }, w2: { state: 'active', incarnation: 1, alive: true, working: [], indexed: true } },
        },
      },
    ];
    const model = buildViewerModel(lines);
    expect(model.agents.names).toEqual(['w1', 'w2']);
    expect(model.nodes).toEqual(['n1']);
    expect(model.agents.retirements).toEqual([
      { t: 20, g: 0, by: 'n1', sweep: true, epoch: 3, state: 'stale', inc: 1, claims: ['t1'], reserved: ['t2', 't3'], until: 40, back: null },
      { t: 20, g: 1, by: 'n1', sweep: true, epoch: 3, state: 'active', inc: 1, claims: [], reserved: [], until: 25, back: { t: 25, by: 'n1', sweep: true, inc: 1 } },
    ]);
    const ev = model.agents.ev.k.map((k, i) => `${model.agents.names[model.agents.ev.g[i]!]}:${AGENT_EVENTS[k]}@${model.agents.ev.t[i]}`);
    expect(ev).toEqual(['w1:register@2', 'w1:retire@20', 'w2:retire@20', 'w2:reindex@25']);
    expect(model.agents.notes).toContain("w1 retired from the agent index by n1's sweep at epoch 3 (record stale, incarnation 1; still claimed: t1; still reserved: t2, t3)");
    expect(model.agents.notes).toContain("w2 put back into the agent index by n1's sweep at epoch 3 (record active, incarnation 1)");
    expect(model.agents.final).toMatchObject({ agents: 2, unindexed: [{ agent: 'w1', state: 'stale', incarnation: 1 }] });
    // A trace without index lines has no retirements.
    expect(buildViewerModel(hand).agents.retirements).toEqual([]);
  });

  it('uses the handoff note a trace line carries, and keeps the final task board', () => {
    const lines = [
      { kind: 'meta', format: TRACE_FORMAT, seed: 3, nodes: ['n1', 'w1', 'w2'], options: {}, violatedAssumptions: [] },
      { t: 1, kind: 'transition', node: 'n1', from: 'candidate', to: 'leader.holding', event: 'lease.written', epoch: 4 },
      { t: 2, kind: 'agent', node: 'w1', event: 'register', agent: 'w1', incarnation: 1, beat: 0 },
      { t: 3, kind: 'agent', node: 'w1', event: 'claim', task: 't1', agent: 'w1', token: 1, incarnation: 1 },
      { t: 3.5, kind: 'agent', node: 'w2', event: 'claim', task: 't2', agent: 'w2', token: 1, incarnation: 1 },
      {
        t: 9,
        kind: 'agent',
        node: 'n1',
        event: 'sweep',
        applied: true,
        epoch: 4,
        detail: {
          marked: [{ agent: 'w1', incarnation: 1, beat: 0 }],
          requeued: [{ task: 't1', from: 'w1', token: 1, handoff: { note: 'requeued by orchestrator n1 at epoch 4 because agent w1 stopped heart-beating', to: 'w2' } }],
        },
      },
      { t: 10, kind: 'agent', node: 'w2', event: 'release', task: 't2', agent: 'w2', token: 1, detail: { note: 'w2 restarted' } },
      {
        t: 12,
        kind: 'agent',
        node: 'env',
        event: 'final',
        detail: {
          tasks: { t1: { state: 'queued', claimedBy: null }, t2: { state: 'claimed', claimedBy: 'w2' }, t3: { state: 'completed', claimedBy: 'w1' } },
          agents: {},
        },
      },
    ];
    const model = buildViewerModel(lines);
    expect(model.agents.names).toEqual(['w1', 'w2']);
    expect(model.agents.notes).toContain(
      'handoff: t1 requeued by n1 at epoch 4 from w1 (claim token 1) — w1 is stale; note: requeued by orchestrator n1 at epoch 4 because agent w1 stopped heart-beating (to w2)',
    );
    expect(model.agents.notes).toContain('handoff: t2 released by w2 (claim token 1) back to the queue; note: w2 restarted');
    expect(model.agents.final).toEqual({
      t: 12,
      counts: { queued: 1, claimed: 1, completed: 1 },
      open: [
        { task: 't1', state: 'queued', by: null },
        { task: 't2', state: 'claimed', by: 'w2' },
      ],
      agents: 0,
      unindexed: [],
    });
    // Without a `final` line there is no board.
    expect(buildViewerModel(lines.slice(0, -1)).agents.final).toBeNull();
  });

  it('derives transitions from a live recording when the trace has none', async () => {
    const clock = new TestClock();
    const recorder = createInspectRecorder({ clock: () => clock.now(), node: 'solo' });
    const elector = createElector({ nodeId: 'solo', store: new MemoryLeaseStore(), clock, inspect: recorder.inspect }).start();
    await clock.advance(2_000);
    await elector.stop();
    const model = buildViewerModel(recorder.lines().map((l) => JSON.parse(JSON.stringify(l))));
    expect(model.meta.source).toBe('inspect');
    expect(model.nodes).toEqual(['solo']);
    const to = model.tr.s.map((s) => model.states[s]);
    expect(to).toContain('leader.holding');
    expect(to.at(-1)).toBe('shutdown');
    const lead = to.indexOf('leader.holding');
    expect(model.tr.ep[lead]).toBe(1);
    // Bare wire events (no trace wrapper) work too.
    const bare = buildViewerModel(recorder.events().map((e) => JSON.parse(JSON.stringify(e))));
    expect(bare.tr.s.length).toBe(model.tr.s.length);
    expect(stateValueToPath({ leader: 'renewing' })).toBe('leader.renewing');
  });
});

describe('viewer input checks (a hand-edited or foreign file gets a clear error, never a dead page)', () => {
  const META = { kind: 'meta', format: TRACE_FORMAT, nodes: ['n1'], options: {} };
  const INIT = { t: 0, kind: 'transition', node: 'n1', from: 'start', to: 'follower.reading', event: 'xstate.init', epoch: null };
  const refusal = (build: () => unknown) => {
    try {
      build();
    } catch (err) {
      expect(err).toBeInstanceOf(TraceInputError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('refuses a wrongly typed field of a known line kind, naming the line and the field', () => {
    const violation = { t: 1, kind: 'violation', checker: 'c', message: 'm', nodes: 'n1' };
    expect(refusal(() => buildViewerHtml([META, INIT, violation]))).toMatch(/^line 3 is not a valid `violation` trace line: nodes: .*expected array/);
    const text = `${JSON.stringify({ ...META, violatedAssumptions: 'long-pause' })}\n\n${JSON.stringify(INIT)}\n`;
    expect(refusal(() => buildViewerHtml(text))).toMatch(/^line 1 is not a valid `meta` trace line: violatedAssumptions: /);
    expect(refusal(() => buildViewerModel([META, { ...INIT, t: '0' }]))).toMatch(/^line 2 .*`transition`.* t: /);
    // File line numbers count blank lines.
    expect(refusal(() => buildViewerHtml(`${JSON.stringify(META)}\n\n${JSON.stringify({ ...INIT, node: 7 })}\n`))).toMatch(/^line 3 /);
  });

  it('refuses a line that is not an object, with its line number', () => {
    expect(refusal(() => buildViewerHtml(`${JSON.stringify(META)}\nnull\n${JSON.stringify(INIT)}\n`))).toBe('line 2 is not a JSON object (null)');
    expect(refusal(() => buildViewerHtml(`${JSON.stringify(META)}\n[1]\n`))).toBe('line 2 is not a JSON object (an array)');
    expect(refusal(() => buildViewerModel([META, 3 as never]))).toBe('line 2 is not a JSON object (number 3)');
  });

  it('refuses input without a single trace line', () => {
    for (const input of ['', '\n  \n', '{"name":"some-package","version":"1.0.0"}\n'])
      expect(refusal(() => buildViewerHtml(input))).toBe('no trace lines (expected meta/transition/inspect lines)');
    expect(refusal(() => buildViewerModel([]))).toBe('no trace lines (expected meta/transition/inspect lines)');
  });

  it('still reads what it does not know loosely: unknown kinds, unknown enum values, a foreign meta format', () => {
    const model = buildViewerModel([
      { ...META, format: 'fenced-leader-trace/v2' },
      INIT,
      { t: 1, kind: 'fault', fault: 'solar-flare', node: 'n1' },
      { t: 2, kind: 'work', node: 'n1', phase: 'dream', token: 1 },
      { t: 3, kind: 'someday', whatever: true },
    ]);
    expect(model.meta.skipped).toBe(2);
    expect(model.faults.map((f) => f.k)).toEqual(['solar-flare']);
  });

  it('never matches a trace transition against a targetless edge (it changes no state)', () => {
    const model = buildViewerModel(hand);
    expect(model.chart.edges.some((e) => e.source === 'follower.releasing' && e.event === 'STOP')).toBe(false);
    expect(model.chart.edges.some((e) => e.source === '' && e.event === 'STOP' && e.target === 'shutdown')).toBe(true);
  });
});

describe('viewer HTML', () => {
  it('is one self-contained page: inline script and style, no external URLs, data embedded safely', () => {
    const tricky: TraceLine[] = [...hand, { t: 43, kind: 'violation', checker: 'x', message: '</script><script>alert(1)</script>' }];
    const html = buildViewerHtml(tricky, 'a <title>');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/@import|url\(\s*['"]?(?!#|data:)/i);
    expect(html.match(/<\/script>/gi)!.length).toBe(2);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain('<title>a &lt;title&gt;</title>');
    const data = /<script type="application\/json" id="trace-data">(.*?)<\/script>/s.exec(html)![1]!;
    expect(JSON.parse(data).violations[1].message).toBe('</script><script>alert(1)</script>');
    expect(html).toContain('data-state="leader.holding"');
  });

  it('embeds a 10-node, 10-minute trace compactly', () => {
    const lines = syntheticTrace({ nodes: 10, durationMs: 600_000, seed: 7 });
    const text = formatTrace(lines);
    expect(parseTrace(text).length).toBe(lines.length); // the synthetic trace is valid trace format
    const html = buildViewerHtml(text);
    expect(lines.length).toBeGreaterThan(100_000);
    expect(html.length).toBeLessThan(text.length / 5);
  });

  it('`fenced-leader view` writes the page next to the trace and prints its path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-view-'));
    try {
      const file = join(dir, 'run.jsonl');
      writeFileSync(file, formatTrace(hand));
      const out: string[] = [];
      const log = console.log;
      console.log = (line: string) => out.push(line);
      try {
        expect(await run([file])).toBe(0);
        expect(await run([file, '--out', join(dir, 'x.html')])).toBe(0);
      } finally {
        console.log = log;
      }
      expect(out).toEqual([join(dir, 'run.html'), join(dir, 'x.html')]);
      expect(readFileSync(join(dir, 'run.html'), 'utf8')).toContain('<canvas id="lanes">');
      expect(await run([])).toBe(2);
      expect(await run([join(dir, 'missing.jsonl')])).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
