import { z } from 'zod';
import { FileLeaseStore } from '../adapters/FileLeaseStore.js';
import type { LeaseStore } from '../adapters/LeaseStore.js';
import { leaseKey, leaseRecordSchema } from '../machines/leaseRecord.js';
import { MalformedRecordError } from './errors.js';

/**
 * Who leads, as an operator (or a restarted orchestrator) reads it from the durable store — by default the
 * file store's `orchestrator-state.json`. It is the lease record under another name: the wall-clock fields are
 * informational, written by the leader's own clock, and decide nothing.
 */
export const orchestratorStateSchema = z.object({
  election: z.string(),
  /** Current holder, null after a release. A holder whose lease expired still shows until someone takes over. */
  leader: z.string().nullable(),
  epoch: z.number().int().nonnegative(),
  /** Wall-clock ISO time the current holder acquired the lease. */
  since: z.string().nullable(),
  /** Wall-clock ISO time of the holder's last renewal. */
  lastRenewal: z.string().nullable(),
  renewals: z.number().int().nonnegative(),
  leaseDurationMs: z.number().int().positive(),
});
export type OrchestratorState = z.output<typeof orchestratorStateSchema>;

export async function orchestratorStateFrom(store: LeaseStore, election = 'default'): Promise<OrchestratorState | undefined> {
  const key = leaseKey(election);
  const entry = await store.read(key);
  if (!entry) return undefined;
  const parsed = leaseRecordSchema.safeParse(entry.value);
  if (!parsed.success) throw new MalformedRecordError(key, parsed.error.message);
  const r = parsed.data;
  return orchestratorStateSchema.parse({
    election,
    leader: r.holder,
    epoch: r.epoch,
    since: r.acquiredAt ?? null,
    lastRenewal: r.renewedAt ?? null,
    renewals: r.renewals,
    leaseDurationMs: r.leaseDurationMs,
  });
}

/** Reads and validates the orchestrator state from a file store's state file (`orchestrator-state.json`). */
export async function readOrchestratorState(path: string, election = 'default'): Promise<OrchestratorState | undefined> {
  const store = new FileLeaseStore({ path });
  try {
    return await orchestratorStateFrom(store, election);
  } finally {
    await store.close();
  }
}
