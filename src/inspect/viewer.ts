import { TRACE_FORMAT } from '../../sim/trace.js';
import { layoutStatechart, statechartOf, statechartSvg } from './statechart.js';
import { VIEWER_CLIENT_JS, VIEWER_CSS } from './viewerClient.js';

/**
 * Trace lines → one self-contained HTML page (no network: script, styles and data inlined). The data is embedded
 * column-wise with dictionary-coded strings so a 10-node, 10-simulated-minute run stays a few megabytes, and the page
 * draws lanes on a canvas (aggregated per pixel), never one DOM node per event.
 */

export interface FaultSpan {
  /** Node index, or -1 for a fault that hits the whole cluster / the store. */
  n: number;
  k: string;
  a: number;
  /** End time; equal to `a` for an instantaneous fault (clock jump). */
  b: number;
  d: string;
}

export interface ViolationMark {
  t: number;
  checker: string;
  message: string;
  nodes: string[];
  expected: boolean;
}

export interface ViewerModel {
  format: 'fenced-leader-viewer/v1';
  title: string;
  meta: {
    seed?: string | number;
    options: Record<string, unknown>;
    violatedAssumptions: string[];
    lines: number;
    storeMessages: number;
    skipped: number;
    source: 'trace' | 'inspect';
  };
  start: number;
  end: number;
  nodes: string[];
  states: string[];
  events: string[];
  /** Transitions, sorted by time: t, node, from, to, event (dictionary indices), epoch (-1 = none). */
  tr: { t: number[]; n: number[]; f: number[]; s: number[]; e: number[]; ep: number[] };
  faults: FaultSpan[];
  /** Fenced writes at the resource: t, node, token, accepted (1/0), high-water mark. */
  res: { t: number[]; n: number[]; tok: number[]; ok: number[]; hw: number[] };
  violations: ViolationMark[];
  chart: { edges: { source: string; target: string; event: string }[] };
}

type Json = Record<string, any>;

const PAIRED: Record<string, string> = { heal: 'partition', resume: 'pause', restart: 'crash' };

/** Parses JSON-lines text (a simulator trace, a live recording, or bare wire events). */
export function parseTraceText(text: string): Json[] {
  const out: Json[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    if (raw.trim() === '') continue;
    try {
      out.push(JSON.parse(raw));
    } catch (err) {
      throw new Error(`line ${lineNo} is not JSON: ${(err as Error).message}`);
    }
  }
  return out;
}

export function stateValueToPath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [key] = Object.keys(value);
    if (key === undefined) return '';
    const rest = stateValueToPath((value as Json)[key]);
    return rest ? `${key}.${rest}` : key;
  }
  return '';
}

export function buildViewerModel(input: readonly Json[], title = 'fenced-leader trace'): ViewerModel {
  const nodes: string[] = [];
  const nodeIndex = new Map<string, number>();
  const nodeOf = (name: string): number => {
    let i = nodeIndex.get(name);
    if (i === undefined) {
      i = nodes.length;
      nodes.push(name);
      nodeIndex.set(name, i);
    }
    return i;
  };
  const dict = () => {
    const list: string[] = [];
    const index = new Map<string, number>();
    return {
      list,
      of(s: string) {
        let i = index.get(s);
        if (i === undefined) {
          i = list.length;
          list.push(s);
          index.set(s, i);
        }
        return i;
      },
    };
  };
  const states = dict();
  const events = dict();

  let meta: Json | undefined;
  const transitions: { t: number; n: number; f: number; s: number; e: number; ep: number; seq: number }[] = [];
  const inspectRoots: Json[] = [];
  const writes: { t: number; n: number; tok: number; ok: number; hw: number }[] = [];
  const faultLines: Json[] = [];
  const violations: ViolationMark[] = [];
  let storeMessages = 0;
  let skipped = 0;
  let start = Number.POSITIVE_INFINITY;
  let end = Number.NEGATIVE_INFINITY;
  const see = (t: unknown) => {
    if (typeof t === 'number' && Number.isFinite(t)) {
      if (t < start) start = t;
      if (t > end) end = t;
    }
  };

  for (const line of input) {
    if (line.kind === undefined && typeof line.type === 'string' && typeof line._version === 'string') {
      // A bare wire event (createInspector's own output): time from createdAt, node from the root session.
      inspectRoots.push({ t: Number(line.createdAt), kind: 'inspect', node: line.rootId ?? line.sessionId, event: line });
      continue;
    }
    switch (line.kind) {
      case 'meta':
        meta = line;
        if (line.format !== TRACE_FORMAT) skipped++;
        for (const n of line.nodes ?? []) nodeOf(String(n));
        break;
      case 'transition':
        see(line.t);
        transitions.push({
          t: line.t,
          n: nodeOf(line.node),
          f: states.of(line.from ?? ''),
          s: states.of(line.to ?? ''),
          e: events.of(line.event ?? ''),
          ep: typeof line.epoch === 'number' ? line.epoch : -1,
          seq: transitions.length,
        });
        break;
      case 'store':
        see(line.t);
        storeMessages++;
        break;
      case 'fault':
        see(line.t);
        faultLines.push(line);
        break;
      case 'resource':
        see(line.t);
        writes.push({ t: line.t, n: nodeOf(line.node), tok: line.token, ok: line.accepted ? 1 : 0, hw: line.highWater });
        break;
      case 'violation':
        see(line.t);
        violations.push({ t: line.t, checker: String(line.checker), message: String(line.message), nodes: line.nodes ?? [], expected: line.expected === true });
        break;
      case 'inspect':
        inspectRoots.push(line);
        break;
      default:
        skipped++;
    }
  }

  let source: 'trace' | 'inspect' = 'trace';
  if (transitions.length === 0 && inspectRoots.length > 0) {
    // A live recording: derive transitions from the root actors' snapshots.
    source = 'inspect';
    const last = new Map<string, { path: string }>();
    for (const line of inspectRoots) {
      const ev = line.event as Json;
      if (!ev || (ev.type !== '@xstate.snapshot' && ev.type !== '@xstate.actor')) continue;
      if (ev.rootId !== undefined && ev.sessionId !== ev.rootId) continue;
      const value = ev.snapshot?.value;
      if (value === undefined) continue;
      const path = stateValueToPath(value);
      const node = String(line.node ?? ev.sessionId);
      const t = Number(line.t);
      see(t);
      const previous = last.get(node);
      if (!previous) {
        nodeOf(node);
        last.set(node, { path });
        continue;
      }
      if (ev.type === '@xstate.actor' || previous.path === path) continue;
      const epoch = ev.snapshot?.context?.epoch;
      transitions.push({
        t,
        n: nodeOf(node),
        f: states.of(previous.path),
        s: states.of(path),
        e: events.of(String(ev.event?.type ?? '')),
        ep: typeof epoch === 'number' ? epoch : -1,
        seq: transitions.length,
      });
      last.set(node, { path });
    }
  }

  transitions.sort((a, b) => a.t - b.t || a.seq - b.seq);
  writes.sort((a, b) => a.t - b.t);
  violations.sort((a, b) => a.t - b.t);
  if (!Number.isFinite(start)) {
    start = 0;
    end = 1;
  }
  if (end <= start) end = start + 1;

  // Faults: pair partition/heal, pause/resume, crash/restart per node; `durationMs` closes a fault by itself.
  const faults: FaultSpan[] = [];
  const open = new Map<string, FaultSpan>();
  for (const f of faultLines) {
    const n = typeof f.node === 'string' ? nodeOf(f.node) : -1;
    const kind = String(f.fault);
    const detail = f.detail ? JSON.stringify(f.detail) : '';
    if (kind in PAIRED) {
      const opened = PAIRED[kind]!;
      const keys = n === -1 ? [...open.keys()].filter((k) => k.startsWith(`${opened}|`)) : [`${opened}|${n}`];
      for (const key of keys) {
        const span = open.get(key);
        if (span) {
          span.b = f.t;
          open.delete(key);
        }
      }
      continue;
    }
    const span: FaultSpan = { n, k: kind, a: f.t, b: f.t, d: detail };
    if (typeof f.durationMs === 'number') span.b = f.t + f.durationMs;
    else if (kind === 'partition' || kind === 'pause' || kind === 'crash') {
      span.b = end;
      open.set(`${kind}|${n}`, span);
    }
    faults.push(span);
  }

  const chart = statechartOf();
  return {
    format: 'fenced-leader-viewer/v1',
    title,
    meta: {
      ...(meta?.seed !== undefined ? { seed: meta.seed } : {}),
      options: meta?.options ?? {},
      violatedAssumptions: meta?.violatedAssumptions ?? [],
      lines: input.length,
      storeMessages,
      skipped,
      source,
    },
    start,
    end,
    nodes,
    states: states.list,
    events: events.list,
    tr: {
      t: transitions.map((x) => x.t),
      n: transitions.map((x) => x.n),
      f: transitions.map((x) => x.f),
      s: transitions.map((x) => x.s),
      e: transitions.map((x) => x.e),
      ep: transitions.map((x) => x.ep),
    },
    faults,
    res: { t: writes.map((w) => w.t), n: writes.map((w) => w.n), tok: writes.map((w) => w.tok), ok: writes.map((w) => w.ok), hw: writes.map((w) => w.hw) },
    violations,
    chart: { edges: chart.edges.map((e) => ({ source: e.source, target: e.target, event: e.event })) },
  };
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

export function renderViewerHtml(model: ViewerModel): string {
  const svg = statechartSvg(layoutStatechart());
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(model.title)}</title>
<style>${VIEWER_CSS}</style>
</head>
<body>
<header>
  <h1>${escapeHtml(model.title)}</h1>
  <div id="summary"></div>
</header>
<main>
  <section id="chart-panel">
    <div class="panel-head"><h2>Statechart</h2>
      <label>highlight <select id="focus"><option value="">all nodes</option></select></label>
    </div>
    <div id="chart">${svg}</div>
  </section>
  <section id="step-panel">
    <div id="controls">
      <button id="first" title="first transition (Home)">« first</button>
      <button id="prev" title="previous transition (←)">◀</button>
      <button id="next" title="next transition (→)">▶</button>
      <button id="last" title="last transition (End)">last »</button>
      <button id="prev-v" title="previous violation">◀ violation</button>
      <button id="next-v" title="next violation">violation ▶</button>
      <label title="step only over transitions that change the top-level state (follower/candidate/leader/fenced)"><input type="checkbox" id="coarse"> top-level changes only</label>
      <label title="step only over the highlighted node's transitions"><input type="checkbox" id="only-focus"> highlighted node only</label>
    </div>
    <input type="range" id="scrubber" min="0" max="0" value="0" aria-label="transition">
    <div id="step"></div>
  </section>
  <section id="timeline-panel">
    <div class="panel-head"><h2>Timeline</h2><span class="hint">wheel: zoom · drag: pan · click: jump · double-click: reset</span><div id="legend"></div></div>
    <div id="timeline"><canvas id="lanes"></canvas><div id="lane-labels"></div><div id="tooltip" hidden></div></div>
  </section>
  <section id="violations-panel">
    <h2>Checker violations <span id="violation-count"></span></h2>
    <ol id="violations"></ol>
  </section>
</main>
<script type="application/json" id="trace-data">${scriptJson(model)}</script>
<script>${VIEWER_CLIENT_JS}</script>
</body>
</html>
`;
}

export function buildViewerHtml(lines: readonly Json[] | string, title?: string): string {
  const parsed = typeof lines === 'string' ? parseTraceText(lines) : lines;
  return renderViewerHtml(buildViewerModel(parsed, title));
}
