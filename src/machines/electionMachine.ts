import { and, assign, cancel, fromCallback, not, raise, sendTo, setup } from 'xstate';
import type { StoreEntry } from '../adapters/LeaseStore.js';
import { type ElectionClock, wallIso } from '../clock.js';
import type { Logger } from '../logger.js';
import type { TimingOptions } from '../options.js';
import { type LeaseRecord, parseLeaseRecord } from './leaseRecord.js';

export type StalePolicy = 'rejoin' | 'shutdown';
export type FenceReason = 'deadline-passed' | 'lease-lost' | 'higher-epoch';

export interface ElectionInput {
  readonly election: string;
  readonly nodeId: string;
  /** Store key of the lease record. */
  readonly key: string;
  readonly timing: TimingOptions;
  readonly onStale: StalePolicy;
  /** Opt-in: judge expiry by the store's own clock when the store has one (see docs/protocol.md). */
  readonly trustStoreClock: boolean;
  /** Only `now()` and `wallNow()` are read here; timers come from the same object passed as the actor's clock. */
  readonly clock: ElectionClock;
  readonly logger: Logger;
  /** Whether the node stands for election from the start. */
  readonly standing?: boolean;
}

/** What this node last learned about the lease, and when (on its own monotonic clock). */
export interface Observation {
  readonly version: string | null;
  readonly record: LeaseRecord | undefined;
  /** Monotonic time of the first reply that showed this version. */
  readonly firstSeenAt: number;
  readonly storeSaysExpired: boolean;
}

export interface ElectionContext extends Omit<ElectionInput, 'standing'> {
  standing: boolean;
  stopRequested: boolean;
  observation: Observation | undefined;
  /** Never decreases; acquisitions start above it even if the store forgot its data. */
  highestEpochSeen: number;
  /** The fencing token while leader; the last one held afterwards. */
  epoch: number | undefined;
  /** Version of our own last successful write of the lease. */
  heldVersion: string | null;
  heldRecord: LeaseRecord | undefined;
  /** Monotonic time after which this node must not act as leader. */
  deadlineAt: number;
  requestId: number;
  requestStartedAt: number;
  fenceReason: FenceReason | undefined;
}

export type ElectionEvent =
  | { type: 'STOP'; release?: boolean }
  | { type: 'RESIGN'; release?: boolean }
  | { type: 'STAND' }
  | { type: 'LEASE_CHANGED' }
  | { type: 'lease.read'; requestId: number; entry: StoreEntry | undefined }
  | { type: 'lease.written'; requestId: number; version: string }
  | { type: 'lease.conflict'; requestId: number }
  | { type: 'lease.failed'; requestId: number; error: unknown }
  | { type: 'renew.deadline' };

/**
 * What the machine asks of its one long-lived `leaseStore` actor. Requests are sequential: each carries the
 * machine's current `requestId`; `abandon` (sent when a request's state is left, by a reply, a timeout or a
 * step-down) tells the actor to stop waiting for that request and to drop its reply.
 */
export type LeaseStoreRequest =
  | { readonly type: 'read'; readonly requestId: number; readonly key: string }
  | {
      readonly type: 'write';
      readonly requestId: number;
      readonly key: string;
      readonly expectedVersion: string | null;
      readonly record: LeaseRecord;
      readonly purpose: 'acquire' | 'renew' | 'release';
    }
  | { readonly type: 'abandon'; readonly requestId: number };

export interface LeaderWorkInput {
  readonly token: number;
  readonly nodeId: string;
}

/** Store replies arrive as events sent back by the `leaseStore` actor, never as promises: see createStoreActors. */
export type LeaseStoreReply = Extract<ElectionEvent, { type: 'lease.read' | 'lease.written' | 'lease.conflict' | 'lease.failed' }>;

const storeNotProvided = fromCallback<LeaseStoreRequest>(({ sendBack, receive }) => {
  receive((request) => {
    if (request.type === 'abandon') return;
    sendBack({
      type: 'lease.failed',
      requestId: request.requestId,
      error: new Error('electionMachine needs the "leaseStore" actor: use createElector(), or machine.provide({ actors })'),
    });
  });
});

function fields(context: ElectionContext, extra: object = {}): object {
  return { election: context.election, nodeId: context.nodeId, epoch: context.epoch, ...extra };
}

function parseRecord(entry: StoreEntry | undefined): LeaseRecord | undefined | Error {
  if (!entry) return undefined;
  const parsed = parseLeaseRecord(entry.value);
  return parsed.success ? parsed.data : new Error(`malformed lease record: ${parsed.error.message}`);
}

/**
 * What a read reply teaches: the observation it yields (the age of an unchanged record carries over) or the
 * malformed record's error. Shared by the guard that decides on the reply and the action that records it.
 */
function observationFrom(context: ElectionContext, entry: StoreEntry | undefined): Observation | Error {
  const record = parseRecord(entry);
  if (record instanceof Error) return record;
  const version = entry?.version ?? null;
  const previous = context.observation;
  // Same version *and* same content: a store that lost its data may hand out a version string again, and a
  // record seen before the loss must not lend its age to a different record that now carries it.
  const unchanged =
    previous !== undefined &&
    previous.version === version &&
    previous.record?.holder === record?.holder &&
    previous.record?.epoch === record?.epoch &&
    previous.record?.renewals === record?.renewals;
  const firstSeenAt = unchanged ? previous.firstSeenAt : context.clock.now();
  const storeSaysExpired =
    context.trustStoreClock &&
    record !== undefined &&
    entry?.readAtMs !== undefined &&
    entry.writtenAtMs !== undefined &&
    entry.readAtMs - entry.writtenAtMs >= record.leaseDurationMs;
  return { version, record, firstSeenAt, storeSaysExpired };
}

function expired(context: ElectionContext, seen: Observation): boolean {
  if (!seen.record || seen.record.holder === null) return true;
  if (seen.storeSaysExpired) return true;
  const wait = Math.max(seen.record.leaseDurationMs, context.timing.leaseDurationMs);
  return context.clock.now() - seen.firstSeenAt >= wait;
}

export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as ElectionInput,
  },
  actors: {
    leaseStore: storeNotProvided,
    leaderWork: fromCallback<any, LeaderWorkInput>(() => {}),
  },
  delays: {
    retryPeriod: ({ context }) => context.timing.retryPeriodMs,
    requestTimeout: ({ context }) => context.timing.requestTimeoutMs,
    // A leader's request may not outlive the leader's own deadline, and must leave room to try again before it.
    leaderRequestTimeout: ({ context }) =>
      Math.max(0, Math.min(context.timing.requestTimeoutMs, context.deadlineAt - context.clock.now())),
    fencedDwell: ({ context }) => (context.onStale === 'rejoin' ? context.timing.retryPeriodMs : 0),
  },
  guards: {
    isCurrentReply: ({ context, event }) => 'requestId' in event && event.requestId === context.requestId,
    isStanding: ({ context }) => context.standing,
    stopRequested: ({ context }) => context.stopRequested,
    /** Judged on the reply being handled, as the observation it is about to become. */
    leaseIsAvailable: ({ context, event }) => {
      if (event.type !== 'lease.read') return false;
      const seen = observationFrom(context, event.entry);
      return !(seen instanceof Error) && expired(context, seen);
    },
    /** The record read is the one this node is giving back: its own holder and the epoch of the write it remembers. */
    recordIsStillOursToRelease: ({ context, event }) => {
      if (event.type !== 'lease.read') return false;
      const record = parseRecord(event.entry);
      return record !== undefined && !(record instanceof Error) && record.holder === context.nodeId && record.epoch === context.heldRecord?.epoch;
    },
    recordIsStillOurs: ({ context, event }) => {
      if (event.type !== 'lease.read') return false;
      const record = parseRecord(event.entry);
      return record !== undefined && !(record instanceof Error) && record.holder === context.nodeId && record.epoch === context.epoch;
    },
    deadlinePassed: ({ context }) => context.clock.now() >= context.deadlineAt,
    wonTooLate: ({ context }) => context.clock.now() >= context.requestStartedAt + context.timing.renewDeadlineMs,
    releaseRequested: ({ event }) => (event.type === 'STOP' || event.type === 'RESIGN') && event.release !== false,
    shutsDownWhenStale: ({ context }) => context.onStale === 'shutdown',
  },
  actions: {
    startRequest: assign(({ context }) => ({
      requestId: context.requestId + 1,
      requestStartedAt: context.clock.now(),
    })),
    sendRead: sendTo('store', ({ context }): LeaseStoreRequest => ({ type: 'read', requestId: context.requestId, key: context.key })),
    sendAcquire: sendTo('store', ({ context }): LeaseStoreRequest => ({
      type: 'write',
      requestId: context.requestId,
      key: context.key,
      expectedVersion: context.observation?.version ?? null,
      record: context.heldRecord!,
      purpose: 'acquire',
    })),
    sendRenew: sendTo('store', ({ context }): LeaseStoreRequest => ({
      type: 'write',
      requestId: context.requestId,
      key: context.key,
      expectedVersion: context.heldVersion,
      record: context.heldRecord!,
      purpose: 'renew',
    })),
    sendRelease: sendTo('store', ({ context }): LeaseStoreRequest => ({
      type: 'write',
      requestId: context.requestId,
      key: context.key,
      expectedVersion: context.heldVersion,
      record: { ...context.heldRecord!, holder: null, renewedAt: wallIso(context.clock) },
      purpose: 'release',
    })),
    // Leaving a request's state (reply, timeout, step-down) ends the wait: a call still under way is aborted and
    // whatever it returns later is dropped.
    abandonRequest: sendTo('store', ({ context }): LeaseStoreRequest => ({ type: 'abandon', requestId: context.requestId })),
    observe: assign(({ context, event }) => {
      if (event.type !== 'lease.read') return {};
      const observation = observationFrom(context, event.entry);
      if (observation instanceof Error) {
        context.logger.error(fields(context, { err: observation.message }), 'lease record is malformed; not touching it');
        return {};
      }
      return { observation, highestEpochSeen: Math.max(context.highestEpochSeen, observation.record?.epoch ?? 0) };
    }),
    forgetObservation: assign({ observation: undefined }),
    becomeLeader: assign(({ context, event }) => {
      if (event.type !== 'lease.written' || !context.heldRecord) return {};
      const epoch = context.heldRecord.epoch;
      context.logger.info(fields(context, { epoch }), 'acquired leadership');
      return {
        epoch,
        heldVersion: event.version,
        highestEpochSeen: Math.max(context.highestEpochSeen, epoch),
        deadlineAt: context.requestStartedAt + context.timing.renewDeadlineMs,
        fenceReason: undefined,
      };
    }),
    prepareAcquire: assign(({ context }) => {
      const epoch = Math.max(context.observation?.record?.epoch ?? 0, context.highestEpochSeen) + 1;
      const now = wallIso(context.clock);
      const record: LeaseRecord = {
        holder: context.nodeId,
        epoch,
        leaseDurationMs: context.timing.leaseDurationMs,
        renewals: 0,
        acquiredAt: now,
        renewedAt: now,
      };
      return { heldRecord: record };
    }),
    prepareRenew: assign(({ context }) => ({
      heldRecord: context.heldRecord && {
        ...context.heldRecord,
        renewals: context.heldRecord.renewals + 1,
        renewedAt: wallIso(context.clock),
      },
    })),
    extendDeadline: assign(({ context, event }) => {
      if (event.type !== 'lease.written') return {};
      // Counted from when the request was *sent*: the store may have applied it at any moment after that.
      return { heldVersion: event.version, deadlineAt: context.requestStartedAt + context.timing.renewDeadlineMs };
    }),
    // A won acquisition this node will not lead on (too late, or told to step down meanwhile): its deadline, like a
    // leader's, counts from when the request was sent, and bounds the release that may follow.
    rememberWrite: assign(({ context, event }) =>
      event.type === 'lease.written' ? { heldVersion: event.version, deadlineAt: context.requestStartedAt + context.timing.renewDeadlineMs } : {},
    ),
    adoptOwnVersion: assign(({ context, event }) => {
      if (event.type !== 'lease.read' || !event.entry) return {};
      const record = parseRecord(event.entry);
      // Our earlier renewal was applied but its reply was lost: continue from that version, without extending the deadline.
      return { heldVersion: event.entry.version, heldRecord: record instanceof Error ? context.heldRecord : record };
    }),
    armDeadline: raise({ type: 'renew.deadline' }, {
      id: 'renew-deadline',
      delay: ({ context }) => Math.max(0, context.deadlineAt - context.clock.now()),
    }),
    disarmDeadline: cancel('renew-deadline'),
    fence: assign(({ context }, params: { reason: FenceReason }) => {
      context.logger.warn(fields(context, { reason: params.reason }), 'fenced: stopped acting as leader');
      return { fenceReason: params.reason, observation: undefined };
    }),
    fenceOnRecord: assign(({ context, event }) => {
      const record = event.type === 'lease.read' ? parseRecord(event.entry) : undefined;
      const reason: FenceReason =
        record && !(record instanceof Error) && record.epoch > (context.epoch ?? 0) ? 'higher-epoch' : 'lease-lost';
      context.logger.warn(
        fields(context, { reason, holder: record instanceof Error ? undefined : record?.holder }),
        'fenced: the lease record is no longer ours',
      );
      return {
        fenceReason: reason,
        observation: undefined,
        highestEpochSeen: Math.max(context.highestEpochSeen, record instanceof Error ? 0 : (record?.epoch ?? 0)),
      };
    }),
    stopStanding: assign({ standing: false }),
    startStanding: assign({ standing: true }),
    requestStop: assign({ stopRequested: true }),
    logStoreFailure: ({ context, event }) => {
      const error = event.type === 'lease.failed' ? event.error : 'timed out';
      context.logger.warn(fields(context, { err: error instanceof Error ? error.message : String(error) }), 'store call failed');
    },
    logRequestTimeout: ({ context }) => {
      context.logger.warn(fields(context, { requestId: context.requestId }), 'store call timed out; a late reply will be ignored');
    },
    logReleased: ({ context }) => context.logger.info(fields(context), 'released the lease'),
  },
}).createMachine({
  id: 'election',
  context: ({ input }) => ({
    election: input.election,
    nodeId: input.nodeId,
    key: input.key,
    timing: input.timing,
    onStale: input.onStale,
    trustStoreClock: input.trustStoreClock,
    clock: input.clock,
    logger: input.logger,
    standing: input.standing ?? true,
    stopRequested: false,
    observation: undefined,
    highestEpochSeen: 0,
    epoch: undefined,
    heldVersion: null,
    heldRecord: undefined,
    deadlineAt: Number.NEGATIVE_INFINITY,
    requestId: 0,
    requestStartedAt: 0,
    fenceReason: undefined,
  }),
  // One store actor for the machine's whole life: a child actor per request cost more than the rest of a transition.
  invoke: { id: 'store', src: 'leaseStore' },
  initial: 'follower',
  on: {
    STOP: { target: '.shutdown' },
    // Once stop() has been asked for, nothing makes the node stand again (it would win and never shut down).
    STAND: { guard: not('stopRequested'), actions: 'startStanding' },
    RESIGN: { actions: 'stopStanding' },
  },
  states: {
    follower: {
      initial: 'reading',
      states: {
        reading: {
          entry: ['startRequest', 'sendRead'],
          exit: 'abandonRequest',
          on: {
            'lease.read': [
              { guard: and(['isCurrentReply', 'isStanding', 'leaseIsAvailable']), target: '#election.candidate', actions: 'observe' },
              { guard: 'isCurrentReply', target: 'waiting', actions: 'observe' },
            ],
            'lease.failed': { guard: 'isCurrentReply', target: 'waiting', actions: 'logStoreFailure' },
          },
          after: { requestTimeout: { target: 'waiting', actions: 'logRequestTimeout' } },
        },
        waiting: {
          after: { retryPeriod: 'reading' },
          on: { LEASE_CHANGED: 'reading' },
        },
        releasing: {
          entry: ['startRequest', 'sendRelease'],
          exit: 'abandonRequest',
          on: {
            'lease.written': { guard: 'isCurrentReply', target: 'released', actions: 'logReleased' },
            // A renewal abandoned by the step-down may have been applied after all: look before giving up.
            'lease.conflict': { guard: 'isCurrentReply', target: 'checkingRelease' },
            'lease.failed': { guard: 'isCurrentReply', target: 'released', actions: 'logStoreFailure' },
            // A second stop() (or stop() after resign()) lets the release under way finish, then shuts down.
            STOP: { actions: 'requestStop' },
          },
          // The old deadline still bounds the release: past it, the lease is expiring anyway.
          after: { leaderRequestTimeout: { target: 'released', actions: 'logRequestTimeout' } },
        },
        checkingRelease: {
          entry: ['startRequest', 'sendRead'],
          exit: 'abandonRequest',
          on: {
            'lease.read': [
              { guard: and(['isCurrentReply', 'recordIsStillOursToRelease']), target: 'releasing', actions: 'adoptOwnVersion' },
              { guard: 'isCurrentReply', target: 'released', actions: 'observe' },
            ],
            'lease.failed': { guard: 'isCurrentReply', target: 'released', actions: 'logStoreFailure' },
            STOP: { actions: 'requestStop' },
          },
          after: { leaderRequestTimeout: { target: 'released', actions: 'logRequestTimeout' } },
        },
        released: {
          always: [{ guard: 'stopRequested', target: '#election.shutdown' }, { target: 'waiting' }],
        },
      },
    },
    candidate: {
      entry: ['prepareAcquire', 'startRequest', 'sendAcquire'],
      exit: 'abandonRequest',
      on: {
        'lease.written': [
          { guard: and(['isCurrentReply', 'isStanding', not('wonTooLate')]), target: 'leader', actions: 'becomeLeader' },
          // The reply was processed after the deadline it would have started (a pause): never lead on it.
          {
            guard: and(['isCurrentReply', 'isStanding']),
            target: 'fenced',
            actions: ['rememberWrite', { type: 'fence', params: { reason: 'deadline-passed' } }],
          },
          // resign() arrived while the acquisition was in flight: give back what we just won.
          { guard: 'isCurrentReply', target: 'follower.releasing', actions: 'rememberWrite' },
        ],
        'lease.conflict': [
          { guard: and(['isCurrentReply', 'stopRequested']), target: 'shutdown' },
          { guard: 'isCurrentReply', target: 'follower.reading', actions: 'forgetObservation' },
        ],
        'lease.failed': [
          { guard: and(['isCurrentReply', 'stopRequested']), target: 'shutdown', actions: 'logStoreFailure' },
          { guard: 'isCurrentReply', target: 'follower.waiting', actions: ['logStoreFailure', 'forgetObservation'] },
        ],
        // stop() while the acquisition is in flight: wait for its outcome, so that a lease it won is given back.
        STOP: [{ guard: 'releaseRequested', actions: ['requestStop', 'stopStanding'] }, { target: 'shutdown' }],
      },
      after: {
        requestTimeout: [
          { guard: 'stopRequested', target: 'shutdown', actions: 'logRequestTimeout' },
          { target: 'follower.waiting', actions: ['logRequestTimeout', 'forgetObservation'] },
        ],
      },
    },
    leader: {
      entry: 'armDeadline',
      exit: 'disarmDeadline',
      invoke: {
        id: 'leader-work',
        src: 'leaderWork',
        input: ({ context }) => ({ token: context.epoch!, nodeId: context.nodeId }),
      },
      initial: 'holding',
      on: {
        'renew.deadline': [
          { guard: 'deadlinePassed', target: 'fenced', actions: { type: 'fence', params: { reason: 'deadline-passed' } } },
          // Timers may fire a hair early; re-arm for the remainder.
          { actions: ['disarmDeadline', 'armDeadline'] },
        ],
        STOP: [
          { guard: 'releaseRequested', target: 'follower.releasing', actions: ['requestStop', 'stopStanding'] },
          { target: 'shutdown' },
        ],
        RESIGN: [
          { guard: 'releaseRequested', target: 'follower.releasing', actions: 'stopStanding' },
          { target: 'follower.waiting', actions: 'stopStanding' },
        ],
      },
      states: {
        holding: {
          after: {
            retryPeriod: [
              // After a pause the renewal timer can fire before the deadline event: do not renew a lease we may no longer claim.
              { guard: 'deadlinePassed', target: '#election.fenced', actions: { type: 'fence', params: { reason: 'deadline-passed' } } },
              { target: 'renewing' },
            ],
          },
        },
        renewing: {
          entry: ['prepareRenew', 'startRequest', 'sendRenew'],
          exit: 'abandonRequest',
          on: {
            'lease.written': { guard: 'isCurrentReply', target: 'holding', actions: ['extendDeadline', 'disarmDeadline', 'armDeadline'] },
            'lease.conflict': { guard: 'isCurrentReply', target: 'verifying' },
            'lease.failed': { guard: 'isCurrentReply', target: 'holding', actions: 'logStoreFailure' },
          },
          after: { leaderRequestTimeout: { target: 'holding', actions: 'logRequestTimeout' } },
        },
        verifying: {
          entry: ['startRequest', 'sendRead'],
          exit: 'abandonRequest',
          on: {
            'lease.read': [
              { guard: and(['isCurrentReply', 'recordIsStillOurs']), target: 'renewing', actions: 'adoptOwnVersion' },
              { guard: 'isCurrentReply', target: '#election.fenced', actions: 'fenceOnRecord' },
            ],
            'lease.failed': { guard: 'isCurrentReply', target: 'holding', actions: 'logStoreFailure' },
          },
          after: { leaderRequestTimeout: { target: 'holding', actions: 'logRequestTimeout' } },
        },
      },
    },
    fenced: {
      after: {
        fencedDwell: [{ guard: 'shutsDownWhenStale', target: 'shutdown' }, { target: 'follower' }],
      },
    },
    shutdown: { type: 'final' },
  },
});

export type ElectionMachine = typeof electionMachine;
