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
