import { CorruptStateError, StoreUnavailableError } from '../errors.js';
import type { Json } from './LeaseStore.js';

/*
 * What every store accepts, so a value that works on one store works on all of them: PostgreSQL's jsonb (and text
 * keys) cannot hold U+0000 nor an unpaired UTF-16 surrogate, and the other network stores encode keys as UTF-8, which
 * turns an unpaired surrogate into U+FFFD (two distinct keys would share one entry). Such a key or value is a caller
 * error: every store rejects it with a TypeError before any call is made (as the file store rejects NaN and friends),
 * never with StoreUnavailableError, which callers retry.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what is looked for.
const SUSPECT = /[\u0000\ud800-\udfff]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what is looked for.
const BAD = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// In JSON.stringify's output U+0000 is always `\u0000` and an unpaired surrogate always `\udXXX` (lowercase hex), each
// preceded by an even number of backslashes (an odd number would make it an escaped backslash followed by text).
const BAD_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f])/;

const WHY = 'U+0000 and unpaired UTF-16 surrogates cannot be stored by every backend (PostgreSQL rejects them)';

function badString(s: string): boolean {
  return SUSPECT.test(s) && BAD.test(s);
}

/** Throws a TypeError for a key some store cannot hold faithfully. Cheap: one scan of the key. */
export function assertStorableKey(key: string): void {
  if (badString(key)) throw new TypeError(`The key ${JSON.stringify(key)} cannot be stored: ${WHY}.`);
}

/** `assertStorableKey` plus the value, given as the JSON text the store is about to send (one scan of it). */
export function assertStorableJson(key: string, json: string): void {
  assertStorableKey(key);
  if (json.includes('\\u') && BAD_ESCAPE.test(json)) throw badValue(key);
}

/** `assertStorableKey` plus the value, walked (for stores that never serialise it). */
export function assertStorableValue(key: string, value: Json): void {
  assertStorableKey(key);
  if (!storable(value)) throw badValue(key);
}

function storable(value: Json): boolean {
  if (typeof value === 'string') return !badString(value);
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) return value.every(storable);
  for (const [k, v] of Object.entries(value)) if (badString(k) || !storable(v)) return false;
  return true;
}

function badValue(key: string): TypeError {
  return new TypeError(`The value for ${JSON.stringify(key)} cannot be stored: it contains a string with ${WHY}.`);
}

/** The typed error for a stored value that is not valid JSON (written by hand or by something else). */
export function corruptEntry(store: string, where: string, detail: string, cause?: unknown): CorruptStateError {
  const err = new CorruptStateError(where, detail, cause === undefined ? undefined : { cause });
  // CorruptStateError's message speaks of a state file; this is one entry of a server store.
  err.message = `The ${store} entry ${where} is corrupt (${detail}). It was left untouched: inspect, repair or delete it, then retry.`;
  return err;
}

/** The error every call made after close() rejects with (StoreUnavailableError, so it carries a `code`). */
export function closedError(store: string, className: string): StoreUnavailableError {
  return new StoreUnavailableError(store, `${className} is closed; create a new store.`);
}
