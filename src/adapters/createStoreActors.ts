import { fromCallback } from 'xstate';
import { CasMismatchError, StoreTimeoutError } from '../errors.js';
import type { ReadLeaseInput, ReadLeaseReply, WriteLeaseInput, WriteLeaseReply } from '../machines/electionMachine.js';
import type { LeaseStore } from './LeaseStore.js';

/**
 * Binds a store to the machine. Replies come back as events (not promise results) so that a simulator can
 * deliver them as scheduled messages; stopping the actor — which the machine does when a request times out or
 * the state is left — aborts the call, and whatever it returns later is dropped.
 */
export function createStoreActors(store: LeaseStore) {
  const readLease = fromCallback<any, ReadLeaseInput>(({ input, sendBack }) => {
    const controller = new AbortController();
    store.read(input.key, { signal: controller.signal }).then(
      (entry) => {
        if (!controller.signal.aborted) sendBack({ type: 'lease.read', requestId: input.requestId, entry } satisfies ReadLeaseReply);
      },
      (error: unknown) => {
        if (!controller.signal.aborted) sendBack({ type: 'lease.failed', requestId: input.requestId, error } satisfies ReadLeaseReply);
      },
    );
    return () => controller.abort(new StoreTimeoutError(`${store.kind} read of ${input.key}`, 0));
  });

  const writeLease = fromCallback<any, WriteLeaseInput>(({ input, sendBack }) => {
    const controller = new AbortController();
    store.compareAndSet(input.key, input.expectedVersion, input.record, { signal: controller.signal }).then(
      (version) => {
        if (!controller.signal.aborted) sendBack({ type: 'lease.written', requestId: input.requestId, version } satisfies WriteLeaseReply);
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        sendBack(
          CasMismatchError.is(error)
            ? ({ type: 'lease.conflict', requestId: input.requestId } satisfies WriteLeaseReply)
            : ({ type: 'lease.failed', requestId: input.requestId, error } satisfies WriteLeaseReply),
        );
      },
    );
    return () => controller.abort(new StoreTimeoutError(`${store.kind} ${input.purpose} of ${input.key}`, 0));
  });

  return { readLease, writeLease };
}
