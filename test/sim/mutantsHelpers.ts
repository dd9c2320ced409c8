// Protocol mutants from the review (same machine, one piece swapped; nothing in src/ or sim/ touched) and a hunt
// over property scenarios that stops at the first unexpected finding.
import fc from 'fast-check';
import { assign, createMachine, sendTo } from 'xstate';
import type { Scenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import { FenceGuard } from '../../src/FenceGuard.js';
import { electionMachine } from '../../src/machines/electionMachine.js';
import { scenarioArb, timingArbWith } from '../properties/arbitraries.js';

export type Machine = typeof electionMachine;

/** Run `machine` over `numRuns` property scenarios; stop at the first one with an unexpected finding (no shrinking). */
export async function hunt(
  machine: Machine | undefined,
  o: { runs: number; broken?: boolean; tight?: boolean; seed?: number; maxFaults?: number } = { runs: 100 },
): Promise<{ caughtAt: number | null; checkers: string[]; expectedOnly: string[]; scenario?: Scenario }> {
  const arb = scenarioArb(
    { breakAssumptions: o.broken ?? false, wipe: o.broken ?? false },
    { maxFaults: o.maxFaults ?? 6, ...(o.tight ? { timing: timingArbWith(0.98) } : {}) },
  );
  const samples = fc.sample(arb, { numRuns: o.runs, seed: o.seed ?? 7 });
  const expectedOnly = new Set<string>();
  for (let i = 0; i < samples.length; i++) {
    const r = await simulate(samples[i]!, { traceStore: false, ...(machine ? { machine } : {}) });
    for (const v of r.violations) if (v.expected) expectedOnly.add(v.checker);
    const bad = r.violations.filter((v) => !v.expected);
    if (bad.length > 0) return { caughtAt: i + 1, checkers: [...new Set(bad.map((v) => v.checker))], expectedOnly: [...expectedOnly], scenario: samples[i] };
  }
  return { caughtAt: null, checkers: [], expectedOnly: [...expectedOnly] };
}

/** Replace one transition list in the machine's config (what provide() cannot do: change a target). */
function withVerifyingRead(list: unknown[]): Machine {
  const c = electionMachine.config as any;
  const leader = c.states.leader;
  const verifying = leader.states.verifying;
  const config = {
    ...c,
    states: {
      ...c.states,
      leader: { ...leader, states: { ...leader.states, verifying: { ...verifying, on: { ...verifying.on, 'lease.read': list } } } },
    },
  };
  return createMachine(config, electionMachine.implementations as any) as unknown as Machine;
}

const orig = (electionMachine.config as any).states.leader.states.verifying.on['lease.read'];

export const mutants = {
  /** Rule 2 broken: acquire at the epoch read, no +1. */
  acquireWithoutIncrement: electionMachine.provide({
    actions: {
      prepareAcquire: assign(({ context }: any) => {
        const epoch = Math.max(context.observation?.record?.epoch ?? 0, context.highestEpochSeen);
        return { heldRecord: { holder: context.nodeId, epoch, leaseDurationMs: context.timing.leaseDurationMs, renewals: 0 } };
      }),
    } as any,
  }),
  /** Rule 2 broken the other way: ignore the highest epoch this node has seen (only the record's epoch + 1). */
  ignoreHighestEpochSeen: electionMachine.provide({
    actions: {
      prepareAcquire: assign(({ context }: any) => ({
        heldRecord: { holder: context.nodeId, epoch: (context.observation?.record?.epoch ?? 0) + 1, leaseDurationMs: context.timing.leaseDurationMs, renewals: 0 },
      })),
    } as any,
  }),
  /** Rule 4 broken: a verify read showing another holder / higher epoch is treated like a failed call. */
  ignoreLeaseLost: withVerifyingRead([orig[0], { guard: 'isCurrentReply', target: 'holding' }]),
  /** Rule 1 broken: expiry judged from the record's wall-clock renewedAt against the follower's own wall clock. */
  wallClockExpiry: electionMachine.provide({
    guards: {
      leaseIsAvailable: ({ context, event }: any) => {
        if (event.type !== 'lease.read') return false;
        const record = event.entry?.value;
        if (!record || record.holder === null) return true;
        const renewed = Date.parse(record.renewedAt ?? record.acquiredAt ?? '');
        return context.clock.wallNow() - renewed >= Math.max(record.leaseDurationMs, context.timing.leaseDurationMs);
      },
    } as any,
  }),
  /** Rule 6 broken: a leader's request timeout is not cut to the time left to its deadline. */
  requestTimeoutNotCut: electionMachine.provide({ delays: { leaderRequestTimeout: ({ context }: any) => context.timing.requestTimeoutMs } as any }),
  /** Rule 5 broken: adopting an ambiguous renewal's version extends the deadline from now. */
  adoptExtendsDeadline: electionMachine.provide({
    actions: {
      adoptOwnVersion: assign(({ context, event }: any) => {
        if (event.type !== 'lease.read' || !event.entry) return {};
        return { heldVersion: event.entry.version, heldRecord: event.entry.value, deadlineAt: context.clock.now() + context.timing.renewDeadlineMs };
      }),
    } as any,
  }),
  /** Existing mutant (test/sim/mutants.test.ts): no deadline timer; the holding state's retry-period guard still fences. */
  noDeadlineTimer: electionMachine.provide({ actions: { armDeadline: () => {} } as any }),
};

/** Rule 3 broken: every renewal is sent with expectedVersion null ("create if absent"). */
export const renewWithNullVersion = electionMachine.provide({
  actions: {
    sendRenew: sendTo('store', ({ context }: any) => ({
      type: 'write',
      requestId: context.requestId,
      key: context.key,
      expectedVersion: null,
      record: context.heldRecord,
      purpose: 'renew',
    })),
  } as any,
});

/** A FenceGuard that admits tokens lower than its mark (patched for the duration of `fn`). */
export async function withLaxFenceGuard<T>(fn: () => Promise<T>): Promise<T> {
  const original = FenceGuard.prototype.admitSync;
  FenceGuard.prototype.admitSync = function (this: any, token: number) {
    this.mark = Math.max(this.mark, token);
  };
  try {
    return await fn();
  } finally {
    FenceGuard.prototype.admitSync = original;
  }
}
