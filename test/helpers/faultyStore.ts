import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';

export type LinkMode = 'ok' | 'hang' | 'fail' | 'drop-reply' | 'slow';

/**
 * One node's view of a shared store, with a link that can be cut: `hang` never answers (a partition),
 * `fail` rejects at once (connection refused), `drop-reply` applies a write but never answers (the ambiguous case).
 */
export class FaultyLink implements LeaseStore {
  readonly kind = 'faulty';
  mode: LinkMode = 'ok';
  calls = 0;
  /** One-shot modes consumed by the next matching calls, before `mode` applies. */
  readonly plan: Array<{ op: 'read' | 'write'; mode: LinkMode }> = [];
  /** For `slow`: the reply is held back this long on this clock. */
  slow: { clock: { setTimeout(fn: () => void, ms: number): unknown }; delayMs: number } | undefined;
  constructor(private readonly inner: LeaseStore) {}
  get capabilities() {
    return { ...this.inner.capabilities, watch: false };
  }
  read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    return this.route(() => this.inner.read(key), options, false);
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.route(() => this.inner.compareAndSet(key, expectedVersion, value), options, true);
  }
  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    return this.route(() => this.inner.commit(ops), options, true);
  }
  async close(): Promise<void> {}

  private route<T>(call: () => Promise<T>, options: CallOptions | undefined, isWrite: boolean): Promise<T> {
    this.calls += 1;
    const planned = this.plan.findIndex((p) => p.op === (isWrite ? 'write' : 'read'));
    const mode = planned >= 0 ? this.plan.splice(planned, 1)[0]!.mode : this.mode;
    if (mode === 'fail') return Promise.reject(new Error('connection refused (injected)'));
    if (mode === 'ok') return call();
    if (mode === 'slow' && this.slow) {
      const { clock, delayMs } = this.slow;
      return call().then((result) => new Promise<T>((resolve) => clock.setTimeout(() => resolve(result), delayMs)));
    }
    if (mode === 'drop-reply' && isWrite) void call().catch(() => {});
    return new Promise<T>((_, reject) => {
      options?.signal?.addEventListener('abort', () => reject(options.signal?.reason), { once: true });
    });
  }
}
