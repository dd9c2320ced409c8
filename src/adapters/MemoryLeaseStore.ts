import { CasMismatchError } from '../errors.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './LeaseStore.js';
import { assertStorableKey, assertStorableValue, closedError } from './storable.js';

interface Slot {
  value: Json;
  version: number;
  writtenAtMs: number;
}

export interface MemoryLeaseStoreOptions {
  /** The store's own clock, reported as `writtenAtMs`/`readAtMs` (the simulator passes virtual real time). */
  readonly storeClock?: () => number;
}

/**
 * An in-process store. It is synchronous underneath (`readSync`/`commitSync`) so the simulator can apply a request
 * at the exact virtual instant a message arrives; the async methods wrap those for the common contract.
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly kind = 'memory';
  readonly capabilities: StoreCapabilities;
  private readonly slots = new Map<string, Slot>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly storeClock: (() => number) | undefined;
  private nextVersion = 1;
  private closed = false;

  constructor(options: MemoryLeaseStoreOptions = {}) {
    this.storeClock = options.storeClock;
    this.capabilities = { watch: true, storeClock: this.storeClock !== undefined, durable: false, multiProcess: false, reusableSignal: true };
  }

  readSync(key: string): StoreEntry | undefined {
    const slot = this.slots.get(key);
    if (!slot) return undefined;
    const entry: { value: Json; version: string; writtenAtMs?: number; readAtMs?: number } = {
      value: cloneJson(slot.value),
      version: String(slot.version),
    };
    if (this.storeClock) {
      entry.writtenAtMs = slot.writtenAtMs;
      entry.readAtMs = this.storeClock();
    }
    return entry;
  }

  commitSync(ops: readonly CommitOp[]): string[] {
    for (const op of ops) {
      const actual = this.slots.get(op.key);
      const actualVersion = actual ? String(actual.version) : null;
      if (actualVersion !== op.expectedVersion) throw new CasMismatchError(op.key, op.expectedVersion, actualVersion);
    }
    const writtenAtMs = this.storeClock ? this.storeClock() : 0;
    const changed: string[] = [];
    const versions = ops.map((op) => {
      if (op.value === undefined) return op.expectedVersion as string;
      const version = this.nextVersion++;
      this.slots.set(op.key, { value: cloneJson(op.value), version, writtenAtMs });
      changed.push(op.key);
      return String(version);
    });
    for (const key of changed) for (const notify of this.watchers.get(key) ?? []) notify();
    // Each op reports its key's version after the commit (for a key written twice, the last write's).
    if (changed.length === 0) return versions;
    return ops.map((op, i) => (changed.includes(op.key) ? String(this.slots.get(op.key)!.version) : versions[i]!));
  }

  /** Forget everything, as a Redis without persistence does on restart. Versions keep rising so no stale CAS can succeed by accident. */
  wipe(): void {
    this.slots.clear();
  }

  keys(): string[] {
    return [...this.slots.keys()];
  }

  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    this.assertUsable(options);
    assertStorableKey(key);
    return this.readSync(key);
  }

  async compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    this.assertUsable(options);
    assertStorableValue(key, value);
    return this.commitSync([{ key, expectedVersion, value }])[0]!;
  }

  async commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    this.assertUsable(options);
    for (const op of ops) assertStorableValue(op.key, op.value ?? null);
    return this.commitSync(ops);
  }

  watch(key: string, onChange: () => void): Unsubscribe {
    if (this.closed) return () => {};
    let set = this.watchers.get(key);
    if (!set) {
      set = new Set();
      this.watchers.set(key, set);
    }
    // Notify asynchronously, as every real backend does, so a watcher never runs inside a writer's call.
    const deferred = () => queueMicrotask(onChange);
    set.add(deferred);
    return () => set.delete(deferred);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
  }

  private assertUsable(options?: CallOptions): void {
    if (this.closed) throw closedError('memory', 'MemoryLeaseStore');
    options?.signal?.throwIfAborted();
  }
}

/**
 * A deep copy of a JSON value, as structuredClone makes but several times cheaper for the small records stored here
 * (the simulator reads and writes on every store message). Anything that is not plain JSON data — a class instance,
 * a cycle-prone exotic — is left to structuredClone.
 */
function cloneJson(value: Json): Json {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return structuredClone(value);
    const out: Json[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneJson(value[i]!);
    return out;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return structuredClone(value);
  const out: { [key: string]: Json } = {};
  for (const key in value) {
    if (key === '__proto__') Object.defineProperty(out, key, { value: cloneJson(value[key]!), enumerable: true, writable: true, configurable: true });
    else out[key] = cloneJson(value[key]!);
  }
  return out;
}
