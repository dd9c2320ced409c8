import type { AnyStateMachine } from 'xstate';
import { type DirectedGraphNode, toDirectedGraph } from 'xstate/graph';
import { electionMachine } from '../machines/electionMachine.js';

/**
 * The statechart as data, derived from the machine's own definition (xstate/graph `toDirectedGraph`, plus the
 * eventless `always` transitions it leaves out): nodes, edges, a Mermaid diagram and a box layout for the viewer.
 */

export interface ChartNode {
  /** Dotted path below the root, as in trace lines: `leader.renewing`. The root is ''. */
  path: string;
  key: string;
  parent: string | undefined;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** The parent's initial child. */
  initial: boolean;
  depth: number;
}

export interface ChartEdge {
  source: string;
  target: string;
  /** The event type as the machine names it (`xstate.after.retryPeriod.election.leader.holding`), '' for always. */
  eventType: string;
  /** Short form: `lease.read`, `after retryPeriod`, `always`. */
  event: string;
  guard: string | undefined;
  label: string;
  /**
   * A targetless transition (`STOP: { actions: 'requestStop' }`): it runs actions and stays where it is — `target` is
   * its own source — and it still shadows any handler of the same event further up (e.g. the root's STOP → shutdown).
   */
  targetless: boolean;
}

export interface Statechart {
  id: string;
  initial: string;
  nodes: ChartNode[];
  edges: ChartEdge[];
}

export function statechartOf(machine: AnyStateMachine = electionMachine): Statechart {
  const graph = toDirectedGraph(machine);
  const rootId = graph.id;
  const rel = (id: string) => (id === rootId ? '' : id.slice(rootId.length + 1));
  const nodes: ChartNode[] = [];
  const edges: ChartEdge[] = [];
  const visit = (node: DirectedGraphNode, depth: number) => {
    const sn = node.stateNode;
    const path = rel(sn.id);
    const parent = sn.parent;
    nodes.push({
      path,
      key: sn.key,
      parent: parent ? rel(parent.id) : undefined,
      type: sn.type,
      initial: parent?.initial?.target.some((t) => t.id === sn.id) ?? false,
      depth,
    });
    // One entry per transition and target; toDirectedGraph gives a targetless transition its own state as target.
    const transitions = [
      ...node.edges.map((e) => ({ transition: e.transition, target: e.target, targetless: !e.transition.target?.length })),
      ...(sn.always ?? []).flatMap((transition) =>
        transition.target?.length ? transition.target.map((target) => ({ transition, target, targetless: false })) : [{ transition, target: sn, targetless: true }],
      ),
    ];
    for (const { transition, target, targetless } of transitions) {
      const eventType = transition.eventType ?? '';
      const event = shortEvent(eventType, sn.id);
      const guard = guardLabel(transition.guard);
      const label = `${guard ? `${event} [${guard}]` : event}${targetless ? ' (no target)' : ''}`;
      edges.push({ source: path, target: rel(target.id), eventType, event, guard, label, targetless });
    }
    for (const child of node.children) visit(child, depth + 1);
  };
  visit(graph, 0);
  const initial = graph.stateNode.initial?.target[0];
  return { id: rootId, initial: initial ? rel(initial.id) : '', nodes, edges };
}

function shortEvent(eventType: string, stateId: string): string {
  if (eventType === '') return 'always';
  const after = /^xstate\.after\.(.+)$/.exec(eventType);
  if (after) {
    const rest = after[1]!;
    const suffix = `.${stateId}`;
    return `after ${rest.endsWith(suffix) ? rest.slice(0, -suffix.length) : rest}`;
  }
  return eventType;
}

/** `and`/`or`/`not` guards as an expression; compound operands are parenthesised (`!(x && y)`, `a && (b || c)`). */
function guardLabel(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  return guardExpr(guard).text;
}

function guardExpr(guard: unknown): { text: string; compound: boolean } {
  if (typeof guard === 'string') return { text: guard, compound: false };
  if (typeof guard === 'function') {
    const g = guard as { name: string; guards?: unknown[] };
    if (Array.isArray(g.guards)) {
      const parts = g.guards.map((x) => {
        const part = x === undefined || x === null ? { text: '?', compound: false } : guardExpr(x);
        return part.compound ? `(${part.text})` : part.text;
      });
      if (g.name === 'not') return { text: `!${parts[0] ?? '?'}`, compound: false };
      if (parts.length === 1) return { text: parts[0]!, compound: false };
      return { text: parts.join(g.name === 'or' ? ' || ' : ' && '), compound: true };
    }
    return { text: g.name || 'guard', compound: false };
  }
  if (typeof guard === 'object' && 'type' in (guard as object)) return { text: String((guard as { type: unknown }).type), compound: false };
  return { text: 'guard', compound: false };
}

/* ------------------------------------------------------------------------------------------------------------------
 * Mermaid
 * ---------------------------------------------------------------------------------------------------------------- */

const mermaidId = (path: string) => path.replace(/[^A-Za-z0-9]/g, '_');
const mermaidLabel = (text: string) => text.replace(/[:;#]/g, ' ').replace(/\s+/g, ' ').trim();

/**
 * A Mermaid `stateDiagram-v2`. Mermaid cannot draw a transition between states inside different composite states,
 * so such a transition is drawn between their outermost distinct ancestors, with the inner states named in the label.
 */
export function toMermaid(chart: Statechart = statechartOf()): string {
  const byParent = new Map<string, ChartNode[]>();
  for (const node of chart.nodes) {
    if (node.parent === undefined) continue;
    const siblings = byParent.get(node.parent) ?? [];
    siblings.push(node);
    byParent.set(node.parent, siblings);
  }
  const ancestors = (path: string): string[] => {
    const parts = path.split('.');
    return parts.map((_, i) => parts.slice(0, i + 1).join('.'));
  };
  const parentOf = (path: string) => (path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '');
  // Edges grouped by the composite state they are drawn in.
  const drawnIn = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const edge of chart.edges) {
    const a = ancestors(edge.source);
    const b = ancestors(edge.target);
    let common = 0;
    while (common < a.length && common < b.length && a[common] === b[common]) common++;
    let from = a[Math.min(common, a.length - 1)] ?? edge.source;
    let to = b[Math.min(common, b.length - 1)] ?? edge.target;
    if (edge.source === '') from = '';
    if (edge.source === edge.target) {
      from = edge.source;
      to = edge.target;
    }
    const inner: string[] = [];
    if (from !== edge.source) inner.push(`from ${edge.source}`);
    if (to !== edge.target) inner.push(`to ${edge.target}`);
    const label = mermaidLabel(inner.length > 0 ? `${edge.label} (${inner.join(', ')})` : edge.label);
    const scope = from === '' ? '' : parentOf(from);
    const line = `${from === '' ? 'anyState' : mermaidId(from)} --> ${to === '' ? 'anyState' : mermaidId(to)} : ${label}`;
    const key = `${scope}|${line}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const list = drawnIn.get(scope) ?? [];
    list.push(line);
    drawnIn.set(scope, list);
  }

  const out: string[] = ['stateDiagram-v2'];
  const emit = (scope: string, indent: string) => {
    const children = byParent.get(scope) ?? [];
    const initial = children.find((c) => c.initial);
    if (initial) out.push(`${indent}[*] --> ${mermaidId(initial.path)}`);
    for (const child of children) {
      out.push(`${indent}state "${child.key}" as ${mermaidId(child.path)}`);
      if ((byParent.get(child.path) ?? []).length > 0) {
        out.push(`${indent}state ${mermaidId(child.path)} {`);
        emit(child.path, `${indent}  `);
        out.push(`${indent}}`);
      }
      if (child.type === 'final') out.push(`${indent}${mermaidId(child.path)} --> [*]`);
    }
    for (const line of drawnIn.get(scope) ?? []) out.push(`${indent}${line}`);
  };
  if ((drawnIn.get('') ?? []).some((l) => l.startsWith('anyState '))) out.push('  state "any state" as anyState');
  emit('', '  ');
  return `${out.join('\n')}\n`;
}

/** The Markdown document committed as docs/statechart.md. */
export function statechartDoc(chart: Statechart = statechartOf()): string {
  const rows = chart.edges.map(
    (e) =>
      `| \`${e.source || '(any state)'}\` | \`${e.event}\` | ${e.guard ? `\`${e.guard}\`` : ''} | ${e.targetless ? '(no target: actions only, stays)' : `\`${e.target}\``} |`,
  );
  return [
    '# The election statechart',
    '',
    '<!-- Generated from `electionMachine` by `npx tsx src/inspect/generateStatechartDoc.ts`; do not edit by hand.',
    '     test/inspect/statechart.test.ts fails when this file differs from a fresh generation. -->',
    '',
    'Drawn from the machine definition in `src/machines/electionMachine.ts` (xstate/graph `toDirectedGraph`, plus the',
    'eventless `always` transitions). Mermaid cannot draw a transition between states inside different composite states,',
    'so such a transition is drawn between their outer states and labelled with the inner ones; the table below lists',
    'every transition exactly. A transition with no target (it runs actions and stays, shadowing any handler of the',
    'same event further up, e.g. the root\'s `STOP`) is drawn as a self-loop labelled "(no target)".',
    '',
    '```mermaid',
    toMermaid(chart).trimEnd(),
    '```',
    '',
    '## Transitions',
    '',
    '| from | event | guard | to |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

/* ------------------------------------------------------------------------------------------------------------------
 * Layout for the viewer: one column per top-level state (in definition order), children stacked inside.
 * ---------------------------------------------------------------------------------------------------------------- */

export interface LayoutBox {
  path: string;
  label: string;
  x: number;
  y: number;
  w: number;
  h: number;
  compound: boolean;
  final: boolean;
  initial: boolean;
}

export interface LayoutEdge {
  source: string;
  target: string;
  /** All transitions drawn by this edge, `; `-separated. */
  label: string;
  /** Short event names, `, `-separated. */
  event: string;
  events: string[];
  /** Every transition it draws is targetless (a self-loop that runs actions only; drawn dashed). */
  targetless: boolean;
  /** SVG path data. */
  d: string;
  labelX: number;
  labelY: number;
}

export interface StatechartLayout {
  width: number;
  height: number;
  boxes: LayoutBox[];
  edges: LayoutEdge[];
}

const ATOM_W = 132;
const ATOM_H = 26;
const GAP_Y = 14;
const PAD = 10;
const HEADER = 24;
const COL_GAP = 80;
const MARGIN = 30;

export function layoutStatechart(chart: Statechart = statechartOf()): StatechartLayout {
  const children = (path: string) => chart.nodes.filter((n) => n.parent === path);
  const boxes = new Map<string, LayoutBox>();
  let x = MARGIN;
  let height = 0;
  const column = new Map<string, number>();
  chart.nodes
    .filter((n) => n.parent === '')
    .forEach((top, col) => {
      const inner = children(top.path);
      const place = (node: ChartNode, bx: number, by: number): { w: number; h: number } => {
        const kids = children(node.path);
        column.set(node.path, col);
        if (kids.length === 0) {
          boxes.set(node.path, { path: node.path, label: node.key, x: bx, y: by, w: ATOM_W, h: ATOM_H, compound: false, final: node.type === 'final', initial: node.initial });
          return { w: ATOM_W, h: ATOM_H };
        }
        let cy = by + HEADER;
        let w = 0;
        for (const kid of kids) {
          const size = place(kid, bx + PAD, cy);
          cy += size.h + GAP_Y;
          w = Math.max(w, size.w);
        }
        const box = { path: node.path, label: node.key, x: bx, y: by, w: w + 2 * PAD, h: cy - GAP_Y + PAD - by, compound: true, final: false, initial: node.initial };
        boxes.set(node.path, box);
        return { w: box.w, h: box.h };
      };
      const size = place(top, x, MARGIN + (inner.length === 0 ? HEADER : 0));
      x += size.w + COL_GAP;
      height = Math.max(height, MARGIN + size.h + (inner.length === 0 ? HEADER : 0));
    });
  const width = x - COL_GAP + MARGIN;
  const edges: LayoutEdge[] = [];
  const loopCount = new Map<string, number>();
  let maxY = height;
  const grouped = new Map<string, ChartEdge[]>();
  for (const edge of chart.edges) {
    const key = `${edge.source}>${edge.target}`;
    const list = grouped.get(key) ?? [];
    list.push(edge);
    grouped.set(key, list);
  }
  for (const group of grouped.values()) {
    const edge = group[0]!;
    const s = boxes.get(edge.source);
    const t = boxes.get(edge.target);
    if (!s || !t) continue; // root-level transitions (STOP from anywhere) are listed, not drawn
    const sc = column.get(edge.source) ?? 0;
    const tc = column.get(edge.target) ?? 0;
    const key = `${edge.source}>${edge.target}`;
    const n = loopCount.get(key) ?? 0;
    loopCount.set(key, n + 1);
    const spread = n * 6;
    let d: string;
    let lx: number;
    let ly: number;
    if (edge.source === edge.target) {
      const x0 = s.x + s.w;
      const y0 = s.y + s.h / 2;
      d = `M${x0},${y0 - 6} C${x0 + 30 + spread},${y0 - 20} ${x0 + 30 + spread},${y0 + 20} ${x0},${y0 + 6}`;
      lx = x0 + 34 + spread;
      ly = y0;
    } else if (sc === tc) {
      // Same column: an arc on the right (downwards) or left (upwards) side.
      const down = t.y > s.y;
      const xs = down ? s.x + s.w : s.x;
      const xt = down ? t.x + t.w : t.x;
      const bulge = (down ? 1 : -1) * (22 + Math.min(40, Math.abs(t.y - s.y) / 6) + spread);
      const ys = s.y + s.h / 2 + (down ? 4 : -4);
      const yt = t.y + t.h / 2 + (down ? -4 : 4);
      d = `M${xs},${ys} C${xs + bulge},${ys} ${xt + bulge},${yt} ${xt},${yt}`;
      lx = Math.max(xs, xt) + bulge * 0.75;
      ly = (ys + yt) / 2;
    } else if (tc > sc) {
      const xs = s.x + s.w;
      const xt = t.x;
      const ys = s.y + Math.min(s.h / 2, 13) + spread / 2;
      const yt = t.y + Math.min(t.h / 2, 13) + spread / 2;
      const dx = Math.max(40, (xt - xs) / 2);
      d = `M${xs},${ys} C${xs + dx},${ys} ${xt - dx},${yt} ${xt},${yt}`;
      lx = (xs + xt) / 2;
      ly = (ys + yt) / 2 - 4;
    } else {
      // Backwards: leave from the bottom and arrive at the bottom, arcing below the chart.
      const xs = s.x + s.w / 2 + spread;
      const xt = t.x + t.w / 2 + spread;
      const ys = s.y + s.h;
      const yt = t.y + t.h;
      const below = Math.max(ys, yt) + 30 + 14 * (sc - tc) + spread;
      d = `M${xs},${ys} C${xs},${below} ${xt},${below} ${xt},${yt}`;
      lx = (xs + xt) / 2;
      ly = below - 8;
      maxY = Math.max(maxY, below);
    }
    const events = [...new Set(group.map((e) => e.event))];
    edges.push({
      source: edge.source,
      target: edge.target,
      label: group.map((e) => e.label).join('; '),
      event: events.join(', '),
      events,
      targetless: group.every((e) => e.targetless),
      d,
      labelX: Math.round(lx),
      labelY: Math.round(ly),
    });
  }
  return { width, height: Math.ceil(maxY + MARGIN), boxes: [...boxes.values()], edges };
}

const shorten = (s: string) => (s.length > 28 ? `${s.slice(0, 26)}…` : s);

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Static SVG markup of the layout; the viewer toggles classes on `[data-state]` boxes and `[data-edge]` paths. */
export function statechartSvg(layout: StatechartLayout = layoutStatechart()): string {
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" viewBox="0 0 ${layout.width} ${layout.height}" width="${layout.width}" height="${layout.height}" role="img" aria-label="election statechart">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>',
  );
  for (const box of layout.boxes.filter((b) => b.compound)) {
    parts.push(
      `<g class="state compound" data-state="${esc(box.path)}"><rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="10"/><text x="${box.x + 10}" y="${box.y + 16}" class="title">${esc(box.label)}</text><g class="chips" data-x="${box.x + box.w - 8}" data-y="${box.y + 12}"></g></g>`,
    );
  }
  for (const edge of layout.edges) {
    parts.push(
      `<g class="edge${edge.targetless ? ' targetless' : ''}" data-edge="${esc(edge.events.map((e) => `${edge.source}>${edge.target}>${e}`).join('|'))}"><path d="${edge.d}" marker-end="url(#arrow)"/><title>${esc(`${edge.source} → ${edge.target}: ${edge.label}`)}</title><text x="${edge.labelX}" y="${edge.labelY}">${esc(shorten(edge.event))}</text></g>`,
    );
  }
  for (const box of layout.boxes.filter((b) => !b.compound)) {
    parts.push(
      `<g class="state atomic${box.final ? ' final' : ''}" data-state="${esc(box.path)}"><rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="6"/><text x="${box.x + 8}" y="${box.y + 17}">${esc(box.label)}</text><g class="chips" data-x="${box.x + box.w - 8}" data-y="${box.y + 13}"></g></g>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}
