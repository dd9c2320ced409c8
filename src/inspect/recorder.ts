import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { InspectionEvent, Observer } from 'xstate';
import type { ElectionClock } from '../clock.js';
import type { Logger } from '../logger.js';

/**
 * Records XState inspection events synchronously, from XState's own `inspect` callback, in @statelyai/inspect's wire
 * format. `@statelyai/inspect`'s `createInspector` defers every event with a real `setTimeout(0)` and stamps
 * `Date.now()`, which breaks simulated time; this recorder converts each event the moment XState emits it and stamps
 * it with an injected clock instead, so a simulator run records the same bytes every time.
 */

/** The @statelyai/inspect release whose wire format these events follow (its `_version` field). */
export const INSPECT_WIRE_VERSION = '0.7.2';

export type WireEventType = '@xstate.actor' | '@xstate.event' | '@xstate.snapshot';

/** One inspection event as `createInspector` sends it to a websocket / browser adapter. */
export interface WireEvent {
  type: WireEventType;
  sessionId: string;
  rootId: string | undefined;
  /** Milliseconds, as a string (the inspector's own convention). */
  createdAt: string;
  id: string | null;
  _version: string;
  /** `@xstate.actor` */
  name?: string;
  parentId?: string | undefined;
  definition?: string | undefined;
  /** `@xstate.actor` and `@xstate.snapshot` */
  snapshot?: unknown;
  /** `@xstate.event` and `@xstate.snapshot` */
  event?: unknown;
  /** `@xstate.event` */
  sourceId?: string | undefined;
}

/** The `inspect` line of a fenced-leader trace (see sim/trace.ts). */
export interface InspectTraceLine {
  t: number;
  kind: 'inspect';
  node: string;
  event: WireEvent;
}

export type TimeSource = ElectionClock | (() => number);

export interface InspectRecorderOptions {
  /**
   * Where time comes from. A function gives `t` and `createdAt` directly (e.g. the simulator's virtual time); an
   * ElectionClock gives `t` from `now()` and `createdAt` from `wallNow()`.
   */
  clock: TimeSource;
  /** The trace's `node` field; defaults to the root actor's id. */
  node?: string;
  /** Called synchronously with every recorded line (e.g. the simulator's trace writer, or a file sink). */
  write?: (line: InspectTraceLine) => void;
  /** Keep the lines in memory for `lines()` / `toJSONL()`; default true unless `write` is given. */
  keep?: boolean;
  /** Which inspection events to record; default actor, event and snapshot. */
  types?: readonly WireEventType[];
  /**
   * Replace XState's process-global session ids (`x:0`, `x:1`, ... — they depend on everything else the process
   * created) with ids stable within this recorder: `<node>/<actor id>#<n>`. Default true.
   */
  stableSessionIds?: boolean;
  /** Strips injected dependencies from a context before it is serialized. Default: drops `clock` and `logger`. */
  sanitizeContext?: (context: Record<string, unknown>) => Record<string, unknown>;
  /** Nesting depth kept when serializing snapshots and events (deeper values become "[Object]"); default 10. */
  depthLimit?: number;
  /**
   * Called once with the first error recording hits (a failing `write`, e.g. a full disk, or an event that cannot be
   * serialized); the recorder then stops recording. Nothing is ever thrown into XState's inspect callback, which would
   * crash the host process or wedge the actor. Default: `logger.error(...)` if a logger is given, else one line on
   * stderr.
   */
  onError?: (error: unknown) => void;
  /** Where the first recording error is reported when no `onError` is given. */
  logger?: Logger;
}

export interface InspectRecorder {
  /** Pass this as `createActor(machine, { inspect })` or `createElector({ inspect })`. */
  readonly inspect: Observer<InspectionEvent> & ((event: InspectionEvent) => void);
  /**
   * Records an event for a given node: for hosts that observe many actors at once, e.g. the simulator's
   * `onInspect(node, event, realT)`. `t` defaults to the recorder's clock (`now()`). `createdAt` (milliseconds; the
   * wire format's wall-clock stamp, `Date.now()` in @statelyai/inspect) defaults to `t` when `t` is given (virtual
   * time: the simulator's recordings stay deterministic), else to the clock's `wallNow()`.
   */
  recordFor(node: string, event: InspectionEvent, t?: number, createdAt?: number): void;
  /** The error that stopped recording (see `onError`), or undefined while recording. */
  readonly error: unknown;
  lines(): readonly InspectTraceLine[];
  events(): readonly WireEvent[];
  toJSONL(): string;
  clear(): void;
}

const DEFAULT_TYPES: readonly WireEventType[] = ['@xstate.actor', '@xstate.event', '@xstate.snapshot'];

export const dropInjectedDependencies = (context: Record<string, unknown>): Record<string, unknown> => {
  if (!context || typeof context !== 'object' || (!('clock' in context) && !('logger' in context))) return context;
  const { clock: _clock, logger: _logger, ...rest } = context;
  return rest;
};

export function createInspectRecorder(options: InspectRecorderOptions): InspectRecorder {
  return buildRecorder(options).recorder;
}

/** The recorder, and `fail` to stop it from outside (a sink that failed), reporting the error once. */
function buildRecorder(options: InspectRecorderOptions): { recorder: InspectRecorder; fail: (error: unknown) => void } {
  const types = new Set(options.types ?? DEFAULT_TYPES);
  const keep = options.keep ?? options.write === undefined;
  const stable = options.stableSessionIds ?? true;
  const sanitize = options.sanitizeContext ?? dropInjectedDependencies;
  const depth = options.depthLimit ?? 10;
  const clock = options.clock;
  const readT = typeof clock === 'function' ? clock : () => clock.now();
  const readCreated = typeof clock === 'function' ? clock : () => clock.wallNow();
  const recorded: InspectTraceLine[] = [];
  const ids = new Map<string, string>();
  const counters = new Map<string, number>();
  const report = reporter(options);
  let failure: { error: unknown } | undefined;

  let nodeOverride: string | undefined;
  const idOf = (ref: RefLike | undefined): string | undefined => {
    if (!ref) return undefined;
    if (!stable) return ref.sessionId;
    const known = ids.get(ref.sessionId);
    if (known) return known;
    const root = rootOf(ref);
    const prefix = nodeOverride ?? options.node ?? nameOf(root);
    const base = ref === root ? prefix : `${prefix}/${ref.id ?? 'actor'}`;
    const n = counters.get(base) ?? 0;
    counters.set(base, n + 1);
    const id = n === 0 && ref === root ? base : `${base}#${n}`;
    ids.set(ref.sessionId, id);
    return id;
  };

  const serializeSnapshot = (snapshot: unknown): unknown => {
    const plain = toPlain(snapshot, depth) as Record<string, unknown> | undefined;
    if (plain && typeof plain === 'object' && plain.context && typeof plain.context === 'object') {
      // Sanitize the live context (the serialized one has already lost the shape sanitizers expect).
      const live = (snapshot as { context?: Record<string, unknown> }).context;
      if (live) plain.context = toPlain(sanitize(live), depth);
    }
    return plain;
  };

  const convert = (event: InspectionEvent, createdAt: string): WireEvent | undefined => {
    switch (event.type) {
      case '@xstate.actor': {
        const ref = event.actorRef as RefLike & { logic?: { config?: { id?: string } }; getSnapshot(): unknown };
        const config = ref.logic?.config;
        let name = ref.id ?? ref.sessionId;
        if (name === ref.sessionId && config?.id) name = config.id;
        return {
          name,
          type: '@xstate.actor',
          definition: JSON.stringify(toPlain(typeof config === 'object' ? config : { id: name }, depth)),
          _version: INSPECT_WIRE_VERSION,
          createdAt,
          id: null,
          rootId: idOf(rootOf(ref)),
          parentId: idOf(ref._parent),
          sessionId: idOf(ref)!,
          snapshot: serializeSnapshot(snapshotOf(ref)),
        };
      }
      case '@xstate.event':
        return {
          type: '@xstate.event',
          event: toPlain(event.event, depth),
          sourceId: idOf(event.sourceRef),
          sessionId: idOf(event.actorRef)!,
          _version: INSPECT_WIRE_VERSION,
          createdAt,
          id: null,
          rootId: idOf(rootOf(event.actorRef)),
        };
      case '@xstate.snapshot':
        return {
          type: '@xstate.snapshot',
          event: toPlain(event.event, depth),
          snapshot: serializeSnapshot(event.snapshot),
          sessionId: idOf(event.actorRef)!,
          _version: INSPECT_WIRE_VERSION,
          createdAt,
          id: null,
          rootId: idOf(rootOf(event.actorRef)),
        };
      default:
        return undefined;
    }
  };

  const record = (event: InspectionEvent, node?: string, at?: number, createdAt?: number): void => {
    // Runs inside XState's inspect callback: an exception here would crash the host or wedge the actor.
    if (failure || !types.has(event.type as WireEventType)) return;
    try {
      const t = at ?? readT();
      nodeOverride = node;
      let wire: WireEvent | undefined;
      try {
        wire = convert(event, String(createdAt ?? at ?? readCreated()));
      } finally {
        nodeOverride = undefined;
      }
      if (!wire) return;
      const root = rootOf(event.actorRef);
      const line: InspectTraceLine = { t, kind: 'inspect', node: node ?? options.node ?? nameOf(root), event: wire };
      if (keep) recorded.push(line);
      options.write?.(line);
    } catch (error) {
      fail(error);
    }
  };
  const fail = (error: unknown) => {
    if (failure) return;
    failure = { error };
    report(error);
  };

  const inspect = Object.assign((event: InspectionEvent) => record(event), { next: (event: InspectionEvent) => record(event) });

  const recorder: InspectRecorder = {
    inspect,
    recordFor: (node, event, t, createdAt) => record(event, node, t, createdAt),
    get error() {
      return failure?.error;
    },
    lines: () => recorded,
    events: () => recorded.map((l) => l.event),
    toJSONL: () => recorded.map((l) => `${JSON.stringify(l)}\n`).join(''),
    clear: () => {
      recorded.length = 0;
    },
  };  return { recorder, fail };

}

/** Reports the first error once: `onError`, else `logger.error`, else one line on stderr. Never throws. */
function reporter(options: { onError?: (error: unknown) => void; logger?: Logger }): (error: unknown) => void {
  let reported = false;
  return (error) => {
    if (reported) return;
    reported = true;
    try {
      if (options.onError) options.onError(error);
      else if (options.logger) options.logger.error({ err: error }, 'inspection recording stopped after an error');
      else process.stderr.write(`fenced-leader: inspection recording stopped after an error: ${(error as Error)?.message ?? String(error)}\n`);
    } catch {
      // A failing reporter must not throw into XState either.
    }
  };
}

/** A synchronous JSON-lines file sink: each line is written with `writeSync` before the callback returns. */
export interface FileSink {
  /** Never throws: the first failing write closes the file, is reported (see `FileSinkOptions`), later lines are dropped. */
  readonly write: (line: InspectTraceLine) => void;
  /** The error that stopped the sink, or undefined. */
  readonly error: unknown;
  close(): void;
}

export interface FileSinkOptions {
  /** Called once with the first write error (e.g. ENOSPC); default: `logger.error`, else one line on stderr. */
  onError?: (error: unknown) => void;
  logger?: Logger;
}

export function createFileSink(path: string, mode: 'append' | 'truncate' = 'truncate', options: FileSinkOptions = {}): FileSink {
  return openFileSink(path, mode, reporter(options));
}

/** `onFailure` is called once, with the first write error, after the file was closed; it must not throw. */
function openFileSink(path: string, mode: 'append' | 'truncate', onFailure: (error: unknown) => void): FileSink {
  const fd = openSync(path, mode === 'append' ? 'a' : 'w');
  let open = true;
  let failure: { error: unknown } | undefined;
  const close = () => {
    if (!open) return;
    open = false;
    try {
      closeSync(fd);
    } catch {}
  };
  return {
    write(line) {
      if (!open) return;
      try {
        writeSync(fd, `${JSON.stringify(line)}\n`);
      } catch (error) {
        failure = { error };
        close();
        onFailure(error);
      }
    },
    get error() {
      return failure?.error;
    },
    close,
  };
}

/**
 * Records to `path` as JSON lines; call `close()` when done. A failing write (a full disk) stops the recording and is
 * reported once through `onError` / `logger` / stderr; the recorded actors carry on unaffected.
 */
export function recordInspectionToFile(path: string, options: Omit<InspectRecorderOptions, 'write' | 'keep'>): InspectRecorder & { close(): void } {
  let fail: (error: unknown) => void = () => {};
  // The sink's first error stops the recorder, which reports it once.
  const sink = openFileSink(path, 'truncate', (error) => fail(error));
  const built = buildRecorder({ ...options, write: sink.write, keep: false });
  fail = built.fail;
  return Object.assign(built.recorder, { close: () => sink.close() });
}

/**
 * XState announces an actor (`@xstate.actor`) from inside its constructor, before its first snapshot exists
 * (`getSnapshot()` throws then); createInspector only gets away with reading it by deferring. Recording synchronously,
 * the actor line carries what `inspector.actor()` sends by default, and the initial state arrives in the
 * `@xstate.snapshot` that follows.
 */
function snapshotOf(ref: { getSnapshot(): unknown }): unknown {
  try {
    return ref.getSnapshot() ?? { status: 'active' };
  } catch {
    return { status: 'active' };
  }
}

/** What the recorder reads of an actor ref (XState's types expose only ActorRefLike on inspection events). */
interface RefLike {
  readonly sessionId: string;
  readonly id?: string;
  readonly _parent?: RefLike;
}

/** The actor's id, or its machine's id when the actor was created without one (XState then uses the session id). */
function nameOf(ref: RefLike & { logic?: { config?: { id?: string } } }): string {
  if (ref.id !== undefined && ref.id !== ref.sessionId) return ref.id;
  return ref.logic?.config?.id ?? ref.sessionId;
}

function rootOf(ref: RefLike): RefLike {
  let marker = ref;
  while (marker._parent) marker = marker._parent;
  return marker;
}

/**
 * A JSON-safe copy: honours `toJSON` (XState snapshots and actor refs have one), turns functions into `{ type: name }`
 * as @statelyai/inspect does, errors into `{ name, message }`, Maps/Sets into objects/arrays, cuts cycles and depth.
 */
export function toPlain(value: unknown, depthLimit = 10): unknown {
  const ancestors: object[] = [];
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'undefined' || typeof v === 'symbol') return undefined;
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'function') return { type: v.name };
    const obj = v as Record<string, unknown> & { toJSON?: () => unknown };
    if (ancestors.includes(obj)) return '[Circular]';
    if (depth >= depthLimit) return Array.isArray(obj) ? '[Array]' : '[Object]';
    ancestors.push(obj);
    try {
      if (typeof obj.toJSON === 'function') {
        const json = obj.toJSON();
        return json === obj ? walkObject(obj, depth) : walk(json, depth);
      }
      if (obj instanceof Error) return { name: obj.name, message: obj.message };
      if (Array.isArray(obj)) return obj.map((item) => walk(item, depth + 1) ?? null);
      if (obj instanceof Map) return walk(Object.fromEntries(obj), depth);
      if (obj instanceof Set) return walk([...obj], depth);
      return walkObject(obj, depth);
    } finally {
      ancestors.pop();
    }
  };
  const walkObject = (obj: Record<string, unknown>, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj)) {
      const item = walk(obj[key], depth + 1);
      if (item !== undefined) out[key] = item;
    }
    return out;
  };
  return walk(value, 0);
}

/* ------------------------------------------------------------------------------------------------------------------
 * Replay
 * ---------------------------------------------------------------------------------------------------------------- */

/** Reads recorded inspection events: trace `inspect` lines, or bare wire events one per line. Other lines are skipped. */
export function readInspectRecording(text: string): WireEvent[] {
  const events: WireEvent[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const line = JSON.parse(raw) as Record<string, unknown>;
    if (line.kind === 'inspect' && line.event && typeof line.event === 'object') events.push(line.event as WireEvent);
    else if (typeof line.type === 'string' && typeof line._version === 'string') events.push(line as unknown as WireEvent);
  }
  return events;
}

export function readInspectRecordingFile(path: string): WireEvent[] {
  return readInspectRecording(readFileSync(path, 'utf8'));
}

/** Anything with an adapter that takes wire events: what `createWebSocketInspector` / `createBrowserInspector` return. */
export interface WireEventSink {
  adapter: { send(event: any): void };
}

export interface ReplayOptions {
  /**
   * 0 (default) sends everything at once; otherwise events are paced by their `createdAt` gaps divided by `speed`
   * (1 = recorded pace), each gap capped at `maxGapMs`.
   */
  speed?: number;
  maxGapMs?: number;
  /** Only these trace nodes / root session ids. */
  filter?: (event: WireEvent) => boolean;
}

/** Sends recorded events, unchanged (timestamps and ids as recorded), into an inspector's adapter. */
export async function replayInto(inspector: WireEventSink, events: readonly WireEvent[], options: ReplayOptions = {}): Promise<number> {
  const speed = options.speed ?? 0;
  const maxGap = options.maxGapMs ?? 1000;
  let sent = 0;
  let previous: number | undefined;
  for (const event of events) {
    if (options.filter && !options.filter(event)) continue;
    const at = Number(event.createdAt);
    if (speed > 0 && previous !== undefined && Number.isFinite(at)) {
      const gap = Math.min(maxGap, Math.max(0, (at - previous) / speed));
      if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
    }
    if (Number.isFinite(at)) previous = at;
    inspector.adapter.send(event);
    sent++;
  }
  return sent;
}

export interface WebSocketReplayOptions extends ReplayOptions {
  /** The websocket the inspector listens on; default ws://localhost:8080 (what `@statelyai/inspect/server` opens). */
  url?: string;
  /** Give up when the socket does not open within this time; default 10 s. */
  connectTimeoutMs?: number;
}

/**
 * Replays a recording into `createWebSocketInspector` (so anyone with the hosted Stately inspector, bridged by
 * `@statelyai/inspect/server`, can watch it). Resolves with the number of events sent once they are flushed.
 */
export async function replayToWebSocket(events: readonly WireEvent[], options: WebSocketReplayOptions = {}): Promise<number> {
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const inspector = createWebSocketInspector({ url: options.url ?? 'ws://localhost:8080', maxDeferredEvents: events.length + 1 });
  const adapter = inspector.adapter as unknown as { status: string; ws?: { bufferedAmount: number } };
  const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
  try {
    while (adapter.status !== 'open') {
      if (Date.now() > deadline) throw new Error(`could not connect to the inspector at ${options.url ?? 'ws://localhost:8080'}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const sent = await replayInto(inspector, events, options);
    while ((adapter.ws?.bufferedAmount ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    return sent;
  } finally {
    inspector.stop();
  }
}
