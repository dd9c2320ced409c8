import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leaseRecordSchema, parseLeaseRecord } from '../src/machines/leaseRecord.js';

// The machine reads the lease record on every store reply through parseLeaseRecord, which skips zod for a
// well-formed record. It must agree with the schema on every input: same output (keys, order, values) or an error.
const field = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.string({ maxLength: 3 }),
  fc.integer({ min: -3, max: 5 }),
  fc.constantFrom(0.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e21),
  fc.boolean(),
  fc.constant({}),
);
const recordish = fc.record(
  {
    holder: field,
    epoch: field,
    leaseDurationMs: field,
    renewals: field,
    acquiredAt: field,
    renewedAt: field,
    extra: field,
  },
  { requiredKeys: [] },
);

describe('parseLeaseRecord', () => {
  it('agrees with leaseRecordSchema.safeParse on arbitrary values', () => {
    fc.assert(
      fc.property(fc.oneof(recordish, field, fc.array(field)), (value) => {
        const fast = parseLeaseRecord(value);
        const zod = leaseRecordSchema.safeParse(value);
        expect(fast.success).toBe(zod.success);
        if (fast.success && zod.success) {
          expect(Object.keys(fast.data)).toEqual(Object.keys(zod.data));
          expect(fast.data).toStrictEqual(zod.data);
        } else if (!fast.success && !zod.success) {
          expect(fast.error.message).toBe(zod.error.message);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts a well-formed record without zod and returns a copy', () => {
    const value = { holder: 'n1', epoch: 3, leaseDurationMs: 1000, renewals: 0, acquiredAt: 'a', renewedAt: 'b' };
    const parsed = parseLeaseRecord(value);
    expect(parsed).toEqual({ success: true, data: value });
    expect(parsed.success && parsed.data).not.toBe(value);
  });

  it('strips unknown keys and reports malformed records as zod does', () => {
    expect(parseLeaseRecord({ holder: null, epoch: 0, leaseDurationMs: 1, renewals: 0, x: 1 })).toEqual({
      success: true,
      data: { holder: null, epoch: 0, leaseDurationMs: 1, renewals: 0 },
    });
    const bad = parseLeaseRecord({ holder: '', epoch: 1, leaseDurationMs: 1000, renewals: 0 });
    expect(bad.success).toBe(false);
  });
});
