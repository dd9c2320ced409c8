import { z } from 'zod';

/**
 * The single record per election. Only `holder`, `epoch` and `leaseDurationMs` decide anything; the wall-clock
 * fields are for operators reading `orchestrator-state.json` and are never used to judge expiry.
 */
export const leaseRecordSchema = z.object({
  holder: z.string().min(1).nullable(),
  epoch: z.number().int().nonnegative(),
  leaseDurationMs: z.number().int().positive(),
  renewals: z.number().int().nonnegative(),
  acquiredAt: z.string().optional(),
  renewedAt: z.string().optional(),
});

export type LeaseRecord = z.output<typeof leaseRecordSchema>;

export function leaseKey(election: string): string {
  return `fenced-leader/${election}/lease`;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * `leaseRecordSchema.safeParse(value)`, but without zod on the common path (the machine reads the record on every
 * store reply). A value that is exactly a well-formed record — the six known keys, nothing else — is copied here;
 * anything else (extra keys to strip, a wrong type, a missing field) goes through zod, which gives the same output
 * and the typed error message.
 */
export function parseLeaseRecord(value: unknown): { success: true; data: LeaseRecord } | { success: false; error: z.ZodError } {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    const { holder, epoch, leaseDurationMs, renewals, acquiredAt, renewedAt } = v;
    let keys = 4;
    if ('acquiredAt' in v) keys++;
    if ('renewedAt' in v) keys++;
    if (
      ((typeof holder === 'string' && holder.length > 0) || holder === null) &&
      isCount(epoch) &&
      isCount(leaseDurationMs) &&
      leaseDurationMs > 0 &&
      isCount(renewals) &&
      (acquiredAt === undefined ? !('acquiredAt' in v) : typeof acquiredAt === 'string') &&
      (renewedAt === undefined ? !('renewedAt' in v) : typeof renewedAt === 'string') &&
      Object.getPrototypeOf(v) === Object.prototype &&
      countKeys(v) === keys
    ) {
      const data: LeaseRecord = { holder, epoch, leaseDurationMs, renewals };
      if (acquiredAt !== undefined) data.acquiredAt = acquiredAt as string;
      if (renewedAt !== undefined) data.renewedAt = renewedAt as string;
      return { success: true, data };
    }
  }
  return leaseRecordSchema.safeParse(value);
}

function countKeys(v: object): number {
  let n = 0;
  for (const _ in v) n++;
  return n;
}
