import { fromCallback } from 'xstate';
import { CasMismatchError, StoreTimeoutError } from '../errors.js';
import type { LeaseStoreReply, LeaseStoreRequest } from '../machines/electionMachine.js';
import type { LeaseStore } from './LeaseStore.js';

/** The request under way: at most one, since the machine waits for each reply (or abandons it) before the next. */
interface Pending {
  readonly request: Exclude<LeaseStoreRequest, { type: 'abandon' }>;
  readonly controller: AbortController;
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

    const abort = () => {
      if (!pending) return;
      const { controller, request } = pending;
      pending = undefined;
      controller.abort(new StoreTimeoutError(`${store.kind} ${describe(request)}`, 0));
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
      const { requestId, key } = request;
      const controller = new AbortController();
      const options = { signal: controller.signal };
      if (request.type === 'read') {
        const current: Pending = { request, controller };
        pending = current;
        store.read(key, options).then(
          (entry) => settle(current, { type: 'lease.read', requestId, entry }),
          (error: unknown) => settle(current, { type: 'lease.failed', requestId, error }),
        );
        return;
      }
      const current: Pending = { request, controller };
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
