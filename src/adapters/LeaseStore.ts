/**
 * The storage contract every backend implements. It is deliberately tiny: versioned reads and all-or-nothing
 * compare-and-set, over JSON values. Leases, agents and tasks are all just values under keys; what they mean, and
 * their validation, lives above the store.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface StoreEntry {
  readonly value: Json;
  /** Opaque; only ever compared for equality. Changes on every successful write. */
  readonly version: string;
  /** The store's own clock at the last write of this key (only when `capabilities.storeClock`). */
  readonly writtenAtMs?: number;
  /** The store's own clock when this read was served (only when `capabilities.storeClock`). */
  readonly readAtMs?: number;
}

export interface StoreCapabilities {
  /** `watch()` delivers change notifications. */
  readonly watch: boolean;
  /** Reads report `writtenAtMs`/`readAtMs` from one clock owned by the store (Redis TIME, PostgreSQL now()). */
  readonly storeClock: boolean;
  /** Data survives a process restart. */
  readonly durable: boolean;
  /** Several processes may share one store safely. */
  readonly multiProcess: boolean;
  /**
   * The store removes any abort listener it added once a call settles, and ignores the signal after that, so the
   * elector may pass one AbortSignal to successive calls until it aborts one (an AbortController per call costs a
   * few microseconds of a loopback renewal). Optional: a store that does not declare it gets a fresh signal per
   * call. The conformance suite checks the claim.
   */
  readonly reusableSignal?: boolean;
}

export interface CallOptions {
  /**
   * Aborting rejects the call promptly; a write may or may not have been applied (the ambiguous case). See
   * `StoreCapabilities.reusableSignal`.
   */
  readonly signal?: AbortSignal;
}

/**
 * One step of an atomic commit. `expectedVersion: null` means "the key must be absent". Without `value` the op
 * only checks the version (for example: "the lease is still the one I renewed").
 */
export interface CommitOp {
  readonly key: string;
  readonly expectedVersion: string | null;
  readonly value?: Json;
}

export type Unsubscribe = () => void;

export interface LeaseStore {
  /** A short, stable name used in logs and errors ("memory", "file", "redis", ...). */
  readonly kind: string;
  readonly capabilities: StoreCapabilities;
  read(key: string, options?: CallOptions): Promise<StoreEntry | undefined>;
  /** Writes `value` if the key's version is `expectedVersion`; resolves to the new version or rejects with `CasMismatchError`. */
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string>;
  /** All ops succeed together or none is applied (rejects with `CasMismatchError` naming the first failing key). Resolves to the version of each op's key afterwards, in order. */
  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]>;
  /** Calls `onChange` (possibly spuriously) after the key may have changed. Present when `capabilities.watch`. */
  watch?(key: string, onChange: () => void): Unsubscribe;
  close(): Promise<void>;
}
