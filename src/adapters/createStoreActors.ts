import { fromCallback } from 'xstate';
import { CasMismatchError, StoreTimeoutError } from '../errors.js';
import type { LeaseStoreReply, LeaseStoreRequest } from '../machines/electionMachine.js';
import type { LeaseStore } from './LeaseStore.js';

/** The request under way: at most one, since the machine waits for each reply (or abandons it) before the next. */
interface Pending {
  readonly request: Exclude<LeaseStoreRequest, { type: 'abandon' }>;
}

function describe(request: Pending['request']): string {
  return request.type === 'read' ? `read of ${request.key}` : `${request.purpose} of ${request.key}`;
}

/**
 * Binds a store to the machine as its one long-lived `leaseStore` actor. Replies come back as events (not promise
 * results) so that a simulator can deliver them as scheduled messages. A request that is abandoned (its state was
 * left: timeout, step-down) or superseded is aborted, and whatever it returns later is dropped.
 */
export function createStoreActors(store: LeaseStore) {
  const leaseStore = fromCallback<LeaseStoreRequest>(({ sendBack, receive }) => {
    let pending: Pending | undefined;
    // Calls are sequential and most are never aborted, so for a store that drops its abort listeners when a call
    // settles (StoreCapabilities.reusableSignal) one controller serves them all until an abort spends it.
    const reuse = store.capabilities.reusableSignal === true;
    let controller = new AbortController();

    const abort = () => {
      if (!pending) return;
      const { request } = pending;
      pending = undefined;
      const operation = `${store.kind} ${describe(request)}`;
      const why = `${operation} was abandoned by the elector (its request timeout passed, or the state that made it was left); its reply, if it comes, will be ignored.`;
      controller.abort(new StoreTimeoutError(operation, 0, why));
      controller = new AbortController();
    };

    const settle = (current: Pending, reply: LeaseStoreReply) => {
      if (pending !== current) return;
      pending = undefined;
      sendBack(reply);
    };

    receive((request) => {
      if (request.type === 'abandon') {
        if (pending?.request.requestId === request.requestId) abort();
        return;
      }
      abort();
      if (!reuse) controller = new AbortController();
      const { requestId, key } = request;
      const options = { signal: controller.signal };
      if (request.type === 'read') {
        const current: Pending = { request };
        pending = current;
        store.read(key, options).then(
          (entry) => settle(current, { type: 'lease.read', requestId, entry }),
          (error: unknown) => settle(current, { type: 'lease.failed', requestId, error }),
        );
        return;
      }
      const current: Pending = { request };
      pending = current;
      store.compareAndSet(key, request.expectedVersion, request.record, options).then(
        (version) => settle(current, { type: 'lease.written', requestId, version }),
        (error: unknown) =>
          settle(
            current,
            CasMismatchError.is(error) ? { type: 'lease.conflict', requestId } : { type: 'lease.failed', requestId, error },
          ),
      );
    });

    return abort;
  });

  return { leaseStore };
}
