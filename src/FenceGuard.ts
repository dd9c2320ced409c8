import { z } from 'zod';
import type { LeaseStore } from './adapters/LeaseStore.js';
import { CasMismatchError, CorruptStateError, InvalidOptionsError, StaleTokenError } from './errors.js';

export interface FenceGuardOptions {
  /** Keep the high-water mark in this store so a restarted resource still rejects stale leaders. */
  readonly store?: LeaseStore;
  /** Store key for the high-water mark; one per protected resource. */
  readonly key?: string;
  /** Start from a known mark (e.g. restored from the resource's own data). */
  readonly highWater?: number;
}

const highWaterSchema = z.object({ highWater: z.number().int().nonnegative() });

/**
 * The resource side of fencing. A write is admitted only with a token no lower than the highest admitted so far,
 * so a deposed leader that wakes up late is refused even if every timing assumption failed.
 */
export class FenceGuard {
  private mark: number;
  private readonly store: LeaseStore | undefined;
  private readonly key: string;
  private storedVersion: string | null | undefined;
  /** The mark as last read from or written to the store (the `highWater` option may start above it). */
  private storedMark = 0;

  constructor(options: FenceGuardOptions = {}) {
    this.mark = options.highWater ?? 0;
    this.store = options.store;
    this.key = options.key ?? 'fenced-leader/resource/high-water';
  }

  /** The highest token admitted so far. */
  get highWater(): number {
    return this.mark;
  }

  /** In-memory check, for guards without a store: throws `StaleTokenError` for a token below the mark. */
  admitSync(token: number): void {
    if (this.store) {
      throw new InvalidOptionsError([
        { path: 'store', code: 'invalid_call', message: 'this FenceGuard persists its mark; call `await admit(token)` instead of admitSync' },
      ]);
    }
    this.check(token);
    this.mark = Math.max(this.mark, token);
  }

  /**
   * Admits `token` or throws `StaleTokenError`. With a store, the raised mark is persisted (compare-and-set, retried
   * on contention) before the call resolves, so a restart cannot forget it.
   */
  async admit(token: number): Promise<void> {
    if (!this.store) return this.admitSync(token);
    for (;;) {
      await this.loadIfNeeded();
      this.check(token);
      try {
        if (token <= this.storedMark && this.storedVersion !== null) {
          // Nothing to raise, but another guard instance may have raised the stored mark since we read it.
          await this.store.commit([{ key: this.key, expectedVersion: this.storedVersion ?? null }]);
          return;
        }
        this.storedVersion = await this.store.compareAndSet(this.key, this.storedVersion ?? null, { highWater: token });
        this.storedMark = token;
        // Replies of concurrent admits may arrive out of order: the mark only ever rises.
        this.mark = Math.max(this.mark, token);
        return;
      } catch (err) {
        if (!CasMismatchError.is(err)) throw err;
        this.storedVersion = undefined; // another guard instance raised it: reload and judge again
      }
    }
  }

  private check(token: number): void {
    if (!Number.isSafeInteger(token) || token < 0) {
      throw new InvalidOptionsError([{ path: 'token', code: 'invalid_type', message: `a fencing token is a non-negative integer, got ${String(token)}` }]);
    }
    if (token < this.mark) throw new StaleTokenError(token, this.mark);
  }

  private async loadIfNeeded(): Promise<void> {
    if (!this.store || this.storedVersion !== undefined) return;
    const entry = await this.store.read(this.key);
    if (!entry) {
      this.storedVersion = null;
      this.storedMark = 0;
      return;
    }
    const parsed = highWaterSchema.safeParse(entry.value);
    if (!parsed.success) throw new CorruptStateError(this.key, `high-water record is malformed: ${parsed.error.message}`);
    this.mark = Math.max(this.mark, parsed.data.highWater);
    this.storedMark = parsed.data.highWater;
    this.storedVersion = entry.version;
  }
}
