import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { and, createMachine, not, or } from 'xstate';
import { STATECHART_DOC_PATH } from '../../src/inspect/generateStatechartDoc.js';
import { layoutStatechart, statechartDoc, statechartOf, statechartSvg, toMermaid } from '../../src/inspect/statechart.js';
import { electionMachine } from '../../src/machines/electionMachine.js';

describe('statechart from electionMachine', () => {
  const chart = statechartOf();

  it('has every state node of the machine', () => {
    const expected: string[] = [];
    const walk = (node: any) => {
      for (const child of Object.values(node.states ?? {}) as any[]) {
        expected.push(child.path.join('.'));
        walk(child);
      }
    };
    walk(electionMachine.root);
    expect(chart.nodes.map((n) => n.path).filter(Boolean).sort()).toEqual(expected.sort());
    expect(chart.initial).toBe('follower');
    expect(chart.nodes.find((n) => n.path === 'shutdown')!.type).toBe('final');
  });

  it('has the event, delayed and eventless transitions, with guards, and the targetless ones as self-loops', () => {
    const has = (source: string, event: string, target: string, guard?: string) =>
      chart.edges.some((e) => e.source === source && e.event === event && e.target === target && (guard === undefined || e.guard === guard));
    expect(has('follower.reading', 'lease.read', 'follower.waiting', 'isCurrentReply')).toBe(true);
    expect(has('follower.waiting', 'after retryPeriod', 'follower.reading')).toBe(true);
    expect(has('follower.reading', 'lease.read', 'candidate', 'isCurrentReply && isStanding && leaseIsAvailable')).toBe(true);
    expect(has('follower.released', 'always', 'follower.waiting')).toBe(true);
    expect(has('candidate', 'lease.written', 'leader', 'isCurrentReply && isStanding && !wonTooLate')).toBe(true);
    expect(has('leader', 'renew.deadline', 'fenced', 'deadlinePassed')).toBe(true);
    expect(has('leader.verifying', 'lease.read', 'fenced')).toBe(true);
    expect(has('', 'STOP', 'shutdown')).toBe(true);
    expect(chart.edges.filter((e) => !e.targetless).some((e) => e.event === 'STAND' || (e.event === 'renew.deadline' && e.target === 'leader'))).toBe(false);
    // Targetless transitions stay where they are and shadow handlers further up: a second stop() while releasing.
    const targetless = chart.edges.filter((e) => e.targetless).map((e) => `${e.source}:${e.event}${e.guard ? `[${e.guard}]` : ''}`);
    expect(targetless.sort()).toEqual(
      [':STAND[!stopRequested]', ':RESIGN', 'follower.releasing:STOP', 'follower.checkingRelease:STOP', 'candidate:STOP[releaseRequested]', 'leader:renew.deadline'].sort(),
    );
    expect(chart.edges.filter((e) => e.targetless).every((e) => e.target === e.source && e.label.endsWith('(no target)'))).toBe(true);
    const mermaid = toMermaid(chart);
    expect(mermaid).toContain('follower_releasing --> follower_releasing : STOP (no target)');
    expect(mermaid).toContain('anyState --> anyState : STAND [!stopRequested] (no target)');
    expect(statechartDoc(chart)).toContain('| `follower.releasing` | `STOP` |  | (no target: actions only, stays) |');
    // The viewer draws them dashed, and never matches a trace transition (a state change) against them.
    const svg = statechartSvg(layoutStatechart(chart));
    expect(svg).toContain('<g class="edge targetless" data-edge="follower.releasing&gt;follower.releasing&gt;STOP">');
  });

  it('a child\'s targetless handler that shadows the root\'s STOP → shutdown changes the doc', () => {
    const base = {
      id: 'm',
      initial: 'a',
      on: { STOP: { target: '.shutdown' } },
      states: { a: { on: { GO: 'b' } }, b: {}, shutdown: { type: 'final' as const } },
    };
    const before = statechartDoc(statechartOf(createMachine(base)));
    const after = statechartDoc(statechartOf(createMachine({ ...base, states: { ...base.states, a: { on: { GO: 'b', STOP: { actions: 'note' } } } } })));
    expect(after).not.toBe(before);
    expect(after).toContain('a --> a : STOP (no target)');
    expect(after).toContain('| `a` | `STOP` |  | (no target: actions only, stays) |');
  });

  it('guard labels keep the scope of not/and/or', () => {
    const guardOf = (guard: Parameters<typeof not>[0]) =>
      statechartOf(createMachine({ id: 'm', initial: 'a', states: { a: { on: { GO: { guard, target: 'b' } } }, b: {} } })).edges.find((e) => e.event === 'GO')!.guard;
    expect(guardOf(not(and(['x', 'y'])))).toBe('!(x && y)');
    expect(guardOf(and([not('x'), 'y']))).toBe('!x && y');
    expect(guardOf(and(['x', or(['y', 'z'])]))).toBe('x && (y || z)');
    expect(guardOf(or([and(['x', 'y']), not(or(['z', 'w']))]))).toBe('(x && y) || !(z || w)');
    expect(guardOf(not(not('x')))).toBe('!!x');
  });

  it('renders Mermaid with composite states and every state declared', () => {
    const mermaid = toMermaid(chart);
    expect(mermaid.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(mermaid).toContain('state follower {');
    expect(mermaid).toContain('state leader {');
    for (const node of chart.nodes.filter((n) => n.path)) expect(mermaid).toContain(`as ${node.path.replace(/\./g, '_')}`);
    // Transitions between different composites are lifted to their outer states.
    expect(mermaid).toContain('leader --> fenced : lease.read [isCurrentReply] (from leader.verifying)');
  });

  it('docs/statechart.md is the fresh generation (run `npx tsx src/inspect/generateStatechartDoc.ts` after changing the machine)', () => {
    expect(readFileSync(STATECHART_DOC_PATH, 'utf8')).toBe(statechartDoc());
  });

  it('lays out every state inside its parent and draws an edge per source/target pair', () => {
    const layout = layoutStatechart(chart);
    const box = (p: string) => layout.boxes.find((b) => b.path === p)!;
    for (const node of chart.nodes.filter((n) => n.path)) {
      const b = box(node.path);
      expect(b).toBeDefined();
      if (node.parent) {
        const p = box(node.parent);
        expect(b.x).toBeGreaterThanOrEqual(p.x);
        expect(b.y).toBeGreaterThanOrEqual(p.y);
        expect(b.x + b.w).toBeLessThanOrEqual(p.x + p.w);
        expect(b.y + b.h).toBeLessThanOrEqual(p.y + p.h);
      }
      expect(b.x + b.w).toBeLessThanOrEqual(layout.width);
      expect(b.y + b.h).toBeLessThanOrEqual(layout.height);
    }
    const pairs = new Set(chart.edges.filter((e) => e.source !== '').map((e) => `${e.source}>${e.target}`));
    expect(layout.edges.length).toBe(pairs.size);
    const svg = statechartSvg(layout);
    expect(svg).toContain('data-state="leader.renewing"');
    expect(svg).toContain('data-edge="follower.waiting&gt;follower.reading&gt;LEASE_CHANGED|follower.waiting&gt;follower.reading&gt;after retryPeriod"');
  });
});
