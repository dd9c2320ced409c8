import { z } from 'zod';
import { TRACE_FORMAT, traceLineSchema } from '../../sim/trace.js';
import { layoutStatechart, statechartOf, statechartSvg } from './statechart.js';
import { VIEWER_CLIENT_JS, VIEWER_CSS } from './viewerClient.js';

/**
 * Trace lines → one self-contained HTML page (no network: script, styles and data inlined). The data is embedded
 * column-wise with dictionary-coded strings so a 10-node, 10-simulated-minute run stays a few megabytes, and the page
 * draws lanes on a canvas (aggregated per pixel), never one DOM node per event.
 */

export interface FaultSpan {
  /** Node index, or -1 for a fault that hits the whole cluster / the store, or -2 for a fault on an agent (`g`). */
  n: number;
  /** Agent index (into `agents.names`) when the fault hits a worker agent's host. */
  g?: number;
  k: string;
  a: number;
  /** End time; equal to `a` for an instantaneous fault (clock jump). */
  b: number;
  d: string;
  /** Set on a partition that came with another fault: `resource-delay` for the store cut paired with a resource delay. */
  w?: string;
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
  /**
   * Fenced writes at the resource: t, node, token, accepted (1/0), high-water mark, time of the claim (-1 = unknown);
   * `dl` lists the writes that sat in a resource-link queue (a `resource-delay` fault): index into the arrays, and
   * how long (`delayedMs`), so the write left the node at t − ms.
   */
  res: { t: number[]; n: number[]; tok: number[]; ok: number[]; hw: number[]; ct: number[]; dl: { i: number[]; ms: number[] } };
  /**
   * Leader work at the nodes (`work` lines), sorted by time: t, node, phase (see WORK_PHASES), token, and for a claim
   * the fate of the fenced write made with it (1 accepted, 0 rejected, -1 no write seen). `send` lines are left out.
   */
  work: { t: number[]; n: number[]; ph: number[]; tok: number[]; w: number[] };
  agents: AgentsModel;
  violations: ViolationMark[];
  chart: { edges: { source: string; target: string; event: string }[] };
}

/** `work.ph` values. */
export const WORK_PHASES = ['claim', 'start', 'stop'] as const;
/** `agents.spans[].s` values. */
export const AGENT_STATES = ['active', 'stale', 'gone'] as const;
/** `agents.ev.k` values. */
export const AGENT_EVENTS = ['claim', 'complete', 'requeue', 'release', 'register', 'stale', 'deregister', 'retire', 'reindex'] as const;

/**
 * An agent removed from the agent index (an `index` line's `removed` entry): by whom (the orchestrator whose sweep
 * retired it, or the writer of the commit), under which lease epoch, the agent record's state and incarnation right
 * after the commit, the tasks then still claimed by or reserved for it, and until when it stayed out of the index
 * (`until`: the time an `index` line added it back, else the end of the trace; `back`: who added it, with which
 * incarnation, null if it never came back).
 */
export interface Retirement {
  t: number;
  g: number;
  by: string;
  sweep: boolean;
  epoch: number;
  state: string | null;
  inc: number;
  claims: string[];
  reserved: string[];
  until: number;
  back: { t: number; by: string; sweep: boolean; inc: number } | null;
}

export interface AgentsModel {
  /** Worker agents (ids), one compact lane each; not among `nodes`. */
  names: string[];
  /** Record states over time: agent, state (AGENT_STATES index), from, to, incarnation. */
  spans: { g: number; s: number; a: number; b: number; inc: number }[];
  /** Heartbeats that reached the store, sorted by time (t rounded to 0.1 ms): drawn aggregated per pixel. */
  beats: { t: number[]; g: number[] };
  /** Agent events, sorted by time: t, agent, kind (AGENT_EVENTS index), task (into `tasks`, -1 none), token (-1 none), note (into `notes`, -1 none). */
  ev: { t: number[]; g: number[]; k: number[]; task: number[]; tok: number[]; note: number[] };
  tasks: string[];
  /** Handoff notes (requeues, releases, stale marks) in words. */
  notes: string[];
  /** Orchestrator sweeps that marked or requeued (ok 1) or were refused (ok 0): t, node, epoch (-1 none). */
  sweeps: { t: number[]; n: number[]; ok: number[]; ep: number[] };
  /** Orchestrator sweep stalls: node, from, to. */
  stalls: { n: number; a: number; b: number }[];
  /** Agents removed from the agent index (`index` lines), sorted by time; see Retirement. */
  retirements: Retirement[];
  /**
   * The board at the end of the run (the simulator's `final` line): tasks per state, the unfinished ones, how many
   * agent records the store held and those no longer listed in the agent index (`indexed: false`).
   */
  final: {
    t: number;
    counts: Record<string, number>;
    open: { task: string; state: string; by: string | null }[];
    agents: number;
    unindexed: { agent: string; state: string; incarnation: number | null }[];
  } | null;
}

/** Unfinished tasks listed from the `final` line at most (the rest are counted). */
const MAX_OPEN_TASKS = 100;

type Json = Record<string, any>;

const PAIRED: Record<string, string> = { heal: 'partition', resume: 'pause', restart: 'crash' };

/** A trace file the viewer cannot draw: not JSON lines, a line of the wrong shape, or no trace lines at all. */
export class TraceInputError extends Error {
  override name = 'TraceInputError';
}

const NO_TRACE_LINES = 'no trace lines (expected meta/transition/inspect lines)';

/** Parses JSON-lines text (a simulator trace, a live recording, or bare wire events); every line must be an object. */
export function parseTraceText(text: string): Json[] {
  return readTraceText(text).lines;
}

function readTraceText(text: string): { lines: Json[]; lineNumbers: number[] } {
  const lines: Json[] = [];
  const lineNumbers: number[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new TraceInputError(`line ${lineNo} is not JSON: ${(err as Error).message}`);
    }
    if (!isObject(value)) throw new TraceInputError(`line ${lineNo} is not a JSON object (${describe(value)})`);
    lines.push(value);
    lineNumbers.push(lineNo);
  }
  return { lines, lineNumbers };
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? 'a string' : `${typeof v} ${String(v)}`);

/**
 * The trace schema (sim/trace.ts) per line kind, as the viewer reads it: field types are checked, but enumerated
 * values it does not know (a newer simulator's agent events, faults, work phases, store phases) and a foreign meta
 * `format` are let through — the viewer skips or shows them as they are.
 */
const LINE_SCHEMAS: ReadonlyMap<string, z.ZodType> = new Map(
  traceLineSchema.options.map((option) => {
    const loose: Record<string, z.ZodType> = {};
    for (const [key, field] of Object.entries(option.shape as Record<string, z.ZodType>)) {
      if (field instanceof z.ZodEnum || (key === 'format' && field instanceof z.ZodLiteral)) loose[key] = z.string();
    }
    return [option.shape.kind.value, option.extend(loose)];
  }),
);

const isWireEvent = (line: Json) => line.kind === undefined && typeof line.type === 'string' && typeof line._version === 'string';

/**
 * Checks lines before the viewer draws them: every line an object, every known trace line kind well-typed (a wrongly
 * typed field would otherwise break the page), and at least one line the viewer draws from (meta, transition,
 * inspect, or a bare wire event). Lines of unknown kinds are skipped as before. Throws a TraceInputError naming the
 * line (its number in the file when `lineNumbers` is given, else its 1-based position).
 */
export function checkTraceLines(lines: readonly unknown[], lineNumbers?: readonly number[]): void {
  let drawable = false;
  lines.forEach((line, i) => {
    const lineNo = lineNumbers?.[i] ?? i + 1;
    if (!isObject(line)) throw new TraceInputError(`line ${lineNo} is not a JSON object (${describe(line)})`);
    if (isWireEvent(line)) {
      drawable = true;
      return;
    }
    const schema = typeof line.kind === 'string' ? LINE_SCHEMAS.get(line.kind) : undefined;
    if (!schema) return;
    const parsed = schema.safeParse(line);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
      throw new TraceInputError(`line ${lineNo} is not a valid \`${line.kind}\` trace line: ${issues.join('; ')}`);
    }
    if (line.kind === 'meta' || line.kind === 'transition' || line.kind === 'inspect') drawable = true;
  });
  if (!drawable) throw new TraceInputError(NO_TRACE_LINES);
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

/** The page's data. Throws a TraceInputError on lines it cannot draw (see checkTraceLines). */
export function buildViewerModel(input: readonly Json[], title = 'fenced-leader trace'): ViewerModel {
  checkTraceLines(input);
  return modelOf(input, title);
}

function modelOf(input: readonly Json[], title: string): ViewerModel {
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

  // Worker agents get lanes of their own (the simulator lists them among the meta's nodes, but they have no
  // election transitions): everyone named by an `agent` line that is not an election node.
  const electionNodes = new Set<string>();
  const agentIds = new Set<string>();
  for (const line of input) {
    if (line.kind === 'transition' || line.kind === 'work' || line.kind === 'resource') electionNodes.add(String(line.node));
    else if (line.kind === 'agent') {
      if (typeof line.agent === 'string' && line.agent !== '') agentIds.add(line.agent);
      const byOrchestrator = line.event === 'sweep' || line.event === 'stall' || (line.event === 'index' && line.detail?.sweep === true);
      if (!byOrchestrator && line.node !== 'env' && typeof line.node === 'string') agentIds.add(line.node);
      if (line.event === 'index') for (const c of [...(line.detail?.removed ?? []), ...(line.detail?.added ?? [])]) if (typeof c?.agent === 'string') agentIds.add(c.agent);
      for (const m of line.detail?.marked ?? []) if (typeof m?.agent === 'string') agentIds.add(m.agent);
      for (const r of line.detail?.requeued ?? []) if (typeof r?.from === 'string') agentIds.add(r.from);
    }
  }
  for (const n of electionNodes) agentIds.delete(n);
  const agentNames: string[] = [];
  const agentIndex = new Map<string, number>();
  const agentOf = (name: string): number => {
    let i = agentIndex.get(name);
    if (i === undefined) {
      i = agentNames.length;
      agentNames.push(name);
      agentIndex.set(name, i);
    }
    return i;
  };
  const agentLines: Json[] = [];
  const workLines: Json[] = [];

  let meta: Json | undefined;
  const transitions: { t: number; n: number; f: number; s: number; e: number; ep: number; seq: number }[] = [];
  const inspectRoots: Json[] = [];
  const writes: { t: number; n: number; tok: number; ok: number; hw: number; ct: number; dl: number }[] = [];
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
        for (const n of line.nodes ?? []) {
          if (agentIds.has(String(n))) agentOf(String(n));
          else nodeOf(String(n));
        }
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
        writes.push({
          t: line.t,
          n: nodeOf(line.node),
          tok: line.token,
          ok: line.accepted ? 1 : 0,
          hw: line.highWater,
          ct: typeof line.claimedT === 'number' ? line.claimedT : -1,
          dl: typeof line.delayedMs === 'number' && line.delayedMs > 0 ? line.delayedMs : 0,
        });
        break;
      case 'work':
        see(line.t);
        if (line.phase !== 'send') workLines.push(line);
        break;
      case 'agent':
        see(line.t);
        agentLines.push(line);
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
    const onAgent = typeof f.node === 'string' && agentIndex.has(f.node);
    const n = typeof f.node === 'string' ? (onAgent ? -2 : nodeOf(f.node)) : -1;
    const who = typeof f.node === 'string' ? f.node : '';
    const kind = String(f.fault);
    const detail = f.detail ? JSON.stringify(f.detail) : '';
    if (kind in PAIRED) {
      const opened = PAIRED[kind]!;
      const keys = n === -1 ? [...open.keys()].filter((k) => k.startsWith(`${opened}|`)) : [`${opened}|${who}`];
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
    if (onAgent) span.g = agentIndex.get(who)!;
    if (kind === 'partition' && typeof f.detail?.with === 'string') span.w = f.detail.with;
    if (typeof f.durationMs === 'number') span.b = f.t + f.durationMs;
    else if (kind === 'partition' || kind === 'pause' || kind === 'crash') {
      span.b = end;
      open.set(`${kind}|${who}`, span);
    }
    faults.push(span);
  }

  // Leader work: each claim with the fate of the fenced write made with it (matched on node and claim time).
  workLines.sort((a, b) => a.t - b.t);
  const fate = new Map<string, number>();
  for (const w of writes) if (w.ct >= 0) fate.set(`${w.n}|${w.ct}`, w.ok);
  const work = { t: [] as number[], n: [] as number[], ph: [] as number[], tok: [] as number[], w: [] as number[] };
  for (const line of workLines) {
    const n = nodeOf(String(line.node));
    const ph = (WORK_PHASES as readonly string[]).indexOf(String(line.phase));
    if (ph < 0) continue;
    work.t.push(line.t);
    work.n.push(n);
    work.ph.push(ph);
    work.tok.push(typeof line.token === 'number' ? line.token : -1);
    work.w.push(ph === 0 ? (fate.get(`${n}|${line.t}`) ?? -1) : -1);
  }

  const agents = buildAgents(agentLines, agentOf, nodeOf, end);
  agents.names = agentNames;

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
    res: {
      t: writes.map((w) => w.t),
      n: writes.map((w) => w.n),
      tok: writes.map((w) => w.tok),
      ok: writes.map((w) => w.ok),
      hw: writes.map((w) => w.hw),
      ct: writes.map((w) => w.ct),
      dl: delayedWrites(writes),
    },
    work,
    agents,
    violations,
    // Targetless transitions change no state, so no trace transition is ever one of them.
    chart: { edges: chart.edges.filter((e) => !e.targetless).map((e) => ({ source: e.source, target: e.target, event: e.event })) },
  };
}

/** The writes that sat in a resource-link queue: their indices (in time order) and delays. */
function delayedWrites(writes: readonly { dl: number }[]): ViewerModel['res']['dl'] {
  const dl = { i: [] as number[], ms: [] as number[] };
  writes.forEach((w, i) => {
    if (w.dl > 0) {
      dl.i.push(i);
      dl.ms.push(w.dl);
    }
  });
  return dl;
}

/** Agent lines → lanes: record states (active/stale/gone), heartbeats, claims, completions, requeues with their notes. */
function buildAgents(lines: Json[], agentOf: (name: string) => number, nodeOf: (name: string) => number, end: number): AgentsModel {
  lines.sort((a, b) => a.t - b.t);
  const tasks: string[] = [];
  const taskIndex = new Map<string, number>();
  const taskOf = (id: unknown): number => {
    if (typeof id !== 'string') return -1;
    let i = taskIndex.get(id);
    if (i === undefined) {
      i = tasks.length;
      tasks.push(id);
      taskIndex.set(id, i);
    }
    return i;
  };
  const notes: string[] = [];
  const spans: AgentsModel['spans'] = [];
  const beats = { t: [] as number[], g: [] as number[] };
  const ev = { t: [] as number[], g: [] as number[], k: [] as number[], task: [] as number[], tok: [] as number[], note: [] as number[] };
  const sweeps = { t: [] as number[], n: [] as number[], ok: [] as number[], ep: [] as number[] };
  const stalls: AgentsModel['stalls'] = [];
  const openSpan = new Map<number, AgentsModel['spans'][number]>();
  const setState = (g: number, s: number, t: number, inc: number | undefined) => {
    const cur = openSpan.get(g);
    if (cur && cur.s === s && (inc === undefined || cur.inc === inc)) return;
    if (cur) cur.b = t;
    const span = { g, s, a: t, b: end, inc: inc ?? cur?.inc ?? 0 };
    spans.push(span);
    openSpan.set(g, span);
  };
  const push = (t: number, g: number, k: (typeof AGENT_EVENTS)[number], task: unknown, tok: unknown, note?: string) => {
    ev.t.push(t);
    ev.g.push(g);
    ev.k.push(AGENT_EVENTS.indexOf(k));
    ev.task.push(taskOf(task));
    ev.tok.push(typeof tok === 'number' ? tok : -1);
    if (note === undefined) ev.note.push(-1);
    else {
      ev.note.push(notes.length);
      notes.push(note);
    }
  };
  const openStall = new Map<number, number>();
  const retirements: Retirement[] = [];
  const outOfIndex = new Map<number, Retirement>();
  let final: AgentsModel['final'] = null;
  for (const line of lines) {
    const t = Number(line.t);
    const inc = typeof line.incarnation === 'number' ? line.incarnation : undefined;
    switch (line.event) {
      case 'register': {
        const g = agentOf(String(line.agent ?? line.node));
        setState(g, 0, t, inc);
        push(t, g, 'register', undefined, undefined, `${line.agent ?? line.node} registered (incarnation ${inc ?? '?'}, beat ${line.beat ?? '?'})`);
        break;
      }
      case 'heartbeat': {
        const g = agentOf(String(line.agent ?? line.node));
        setState(g, 0, t, inc);
        beats.t.push(Math.round(t * 10) / 10);
        beats.g.push(g);
        break;
      }
      case 'deregister': {
        const g = agentOf(String(line.agent ?? line.node));
        setState(g, 2, t, inc);
        push(t, g, 'deregister', undefined, undefined, `${line.agent ?? line.node} deregistered (incarnation ${inc ?? '?'})`);
        break;
      }
      case 'claim':
        push(t, agentOf(String(line.agent || line.node)), 'claim', line.task, line.token);
        break;
      case 'complete': {
        const d = line.detail ?? {};
        const odd = d.wasState !== undefined && d.wasState !== 'claimed' ? ` (task was ${d.wasState})` : '';
        const other = d.claimedBy && d.claimedBy !== line.agent ? ` (claimed by ${d.claimedBy} with token ${d.claimToken})` : '';
        push(t, agentOf(String(line.agent || line.node)), 'complete', line.task, line.token, odd || other ? `completed ${line.task}${odd}${other}` : undefined);
        break;
      }
      case 'release': {
        const recorded = handoffText(line.detail ?? {});
        push(
          t,
          agentOf(String(line.agent || line.node)),
          'release',
          line.task,
          line.token,
          `handoff: ${line.task} released by ${line.agent || line.node} (claim token ${line.token}) back to the queue${recorded ? `; note: ${recorded}` : ''}`,
        );
        break;
      }
      case 'sweep': {
        const n = nodeOf(String(line.node));
        const ep = typeof line.epoch === 'number' ? line.epoch : -1;
        sweeps.t.push(t);
        sweeps.n.push(n);
        sweeps.ok.push(line.applied === false ? 0 : 1);
        sweeps.ep.push(ep);
        if (line.applied === false) break;
        const by = `${line.node}${ep >= 0 ? ` at epoch ${ep}` : ''}`;
        for (const m of line.detail?.marked ?? []) {
          const g = agentOf(String(m.agent));
          setState(g, 1, t, typeof m.incarnation === 'number' ? m.incarnation : undefined);
          push(t, g, 'stale', undefined, undefined, `${m.agent} marked stale by ${by} (incarnation ${m.incarnation}, last beat ${m.beat})`);
        }
        for (const r of line.detail?.requeued ?? []) {
          const from = typeof r.from === 'string' ? r.from : null;
          const g = from === null ? -1 : agentOf(from);
          const stale = g >= 0 && openSpan.get(g)?.s === 1;
          const recorded = handoffText(r);
          const note =
            `handoff: ${r.task} requeued by ${by} from ${from ?? '(nobody)'} (claim token ${r.token})${stale ? ` — ${from} is stale` : ''}` +
            (recorded ? `; note: ${recorded}` : '');
          if (g >= 0) push(t, g, 'requeue', r.task, r.token, note);
        }
        break;
      }
      case 'stall': {
        const n = nodeOf(String(line.node));
        const since = Number(line.detail?.since ?? t);
        if (line.detail?.begin === true) {
          openStall.set(n, stalls.length);
          stalls.push({ n, a: since, b: since + Number(line.detail?.plannedMs ?? 0) });
        } else {
          const i = openStall.get(n);
          if (i !== undefined) {
            stalls[i]!.b = t;
            openStall.delete(n);
          } else stalls.push({ n, a: since, b: t });
        }
        break;
      }
      case 'index': {
        // An applied commit changed the agent index: retirements (removed) and re-indexings (added by a sweep); an
        // agent's own registration (added, not by a sweep) already has its `register` line and only ends a retirement.
        const sweep = line.detail?.sweep === true;
        const lease = line.detail?.lease;
        const epoch = typeof lease?.epoch === 'number' ? lease.epoch : typeof line.epoch === 'number' ? line.epoch : -1;
        const by = String(line.node);
        const at = `${by}${sweep ? "'s sweep" : ''}${epoch >= 0 ? ` at epoch ${epoch}` : ''}`;
        for (const r of line.detail?.removed ?? []) {
          if (typeof r?.agent !== 'string') continue;
          const g = agentOf(r.agent);
          const claims = Array.isArray(r.claims) ? r.claims.map(String) : [];
          const reserved = Array.isArray(r.reserved) ? r.reserved.map(String) : [];
          const state = typeof r.state === 'string' ? r.state : null;
          const inc = typeof r.incarnation === 'number' ? r.incarnation : -1;
          const retirement: Retirement = { t, g, by, sweep, epoch, state, inc, claims, reserved, until: end, back: null };
          retirements.push(retirement);
          outOfIndex.set(g, retirement);
          const tasksLeft =
            claims.length || reserved.length
              ? `${claims.length ? `still claimed: ${claims.join(', ')}` : ''}${claims.length && reserved.length ? '; ' : ''}${reserved.length ? `still reserved: ${reserved.join(', ')}` : ''}`
              : 'no task claimed or reserved';
          push(t, g, 'retire', undefined, undefined, `${r.agent} retired from the agent index by ${at} (record ${state ?? 'missing'}${inc >= 0 ? `, incarnation ${inc}` : ''}; ${tasksLeft})`);
        }
        for (const a of line.detail?.added ?? []) {
          if (typeof a?.agent !== 'string') continue;
          const g = agentOf(a.agent);
          const inc = typeof a.incarnation === 'number' ? a.incarnation : -1;
          const open = outOfIndex.get(g);
          if (open) {
            open.until = t;
            open.back = { t, by, sweep, inc };
            outOfIndex.delete(g);
          }
          if (sweep) push(t, g, 'reindex', undefined, undefined, `${a.agent} put back into the agent index by ${at} (record ${a.state ?? 'missing'}${inc >= 0 ? `, incarnation ${inc}` : ''})`);
        }
        break;
      }
      case 'final': {
        const all = line.detail?.tasks;
        if (!all || typeof all !== 'object') break;
        const counts: Record<string, number> = {};
        const open: { task: string; state: string; by: string | null }[] = [];
        for (const [task, rec] of Object.entries(all as Record<string, Json>)) {
          const state = String(rec?.state ?? 'unknown');
          counts[state] = (counts[state] ?? 0) + 1;
          if (state !== 'completed' && open.length < MAX_OPEN_TASKS) open.push({ task, state, by: typeof rec?.claimedBy === 'string' ? rec.claimedBy : null });
        }
        const records = line.detail?.agents && typeof line.detail.agents === 'object' ? Object.entries(line.detail.agents as Record<string, Json>) : [];
        const unindexed = records
          .filter(([, rec]) => rec?.indexed === false)
          .map(([agent, rec]) => ({ agent, state: String(rec?.state ?? 'unknown'), incarnation: typeof rec?.incarnation === 'number' ? rec.incarnation : null }));
        final = { t, counts, open, agents: records.length, unindexed };
        break;
      }
      default:
        break;
    }
  }
  return { names: [], spans, beats, ev, tasks, notes, sweeps, stalls, retirements, final };
}

/**
 * The library's own handoff note, when a trace line carries it: `{ note }`, `{ handoff: { note, reason, to } }`, or
 * a plain `handoff` string. Simulator traces carry `{ handoff: { note, reason, to } }` on each requeued entry and
 * release line; without one the viewer describes the requeue itself.
 */
function handoffText(r: Json): string | null {
  const h = r?.handoff;
  const note = typeof r?.note === 'string' ? r.note : typeof h === 'string' ? h : typeof h?.note === 'string' ? h.note : null;
  if (note === null) return null;
  const to = typeof h?.to === 'string' && h.to !== '' ? ` (to ${h.to})` : '';
  return `${note}${to}`;
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
  <section id="handoffs-panel" hidden>
    <h2>Agent handoffs <span id="handoff-count"></span></h2>
    <ol id="handoffs"></ol>
    <h3 id="index-changes-head" hidden>Agent index changes <span id="index-change-count"></span></h3>
    <ol id="index-changes" hidden></ol>
    <p id="final-board"></p>
    <p id="final-agents" hidden></p>
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

/** Trace lines (or JSON-lines text) → the page. Throws a TraceInputError, naming the line, on input it cannot draw. */
export function buildViewerHtml(lines: readonly Json[] | string, title = 'fenced-leader trace'): string {
  const { lines: parsed, lineNumbers } = typeof lines === 'string' ? readTraceText(lines) : { lines, lineNumbers: undefined };
  checkTraceLines(parsed, lineNumbers);
  return renderViewerHtml(modelOf(parsed, title));
}
