import { fromCallback } from 'xstate';
import { CasMismatchError, StoreTimeoutError } from '../errors.js';
import type { ReadLeaseInput, ReadLeaseReply, WriteLeaseInput, WriteLeaseReply } from '../machines/electionMachine.js';
import type { CallOptions, LeaseStore } from './LeaseStore.js';

/**
 * Runs one store call for an invoked actor. The reply is sent back only while the actor lives; stopping the actor
 * (a timeout, or the state being left) aborts a call still under way, and whatever it returns later is dropped.
 * A call that already answered is not aborted: its abort would only cost an error object and listener dispatch.
 */
function boundCall<T>(
  call: (options: CallOptions) => Promise<T>,
  onReply: (result: T) => void,
  onError: (error: unknown) => void,
  describe: () => string,
): () => void {
  const controller = new AbortController();
  let answered = false;
  call({ signal: controller.signal }).then(
    (result) => {
      answered = true;
      if (!controller.signal.aborted) onReply(result);
    },
    (error: unknown) => {
      answered = true;
      if (!controller.signal.aborted) onError(error);
    },
  );
  return () => {
    if (!answered) controller.abort(new StoreTimeoutError(describe(), 0));
  };
}

/**
 * Binds a store to the machine. Replies come back as events (not promise results) so that a simulator can
 * deliver them as scheduled messages.
 */
export function createStoreActors(store: LeaseStore) {
  const readLease = fromCallback<any, ReadLeaseInput>(({ input, sendBack }) =>
    boundCall(
      (options) => store.read(input.key, options),
      (entry) => sendBack({ type: 'lease.read', requestId: input.requestId, entry } satisfies ReadLeaseReply),
      (error) => sendBack({ type: 'lease.failed', requestId: input.requestId, error } satisfies ReadLeaseReply),
      () => `${store.kind} read of ${input.key}`,
    ),
  );

  const writeLease = fromCallback<any, WriteLeaseInput>(({ input, sendBack }) =>
    boundCall(
      (options) => store.compareAndSet(input.key, input.expectedVersion, input.record, options),
      (version) => sendBack({ type: 'lease.written', requestId: input.requestId, version } satisfies WriteLeaseReply),
      (error) =>
        sendBack(
          CasMismatchError.is(error)
            ? ({ type: 'lease.conflict', requestId: input.requestId } satisfies WriteLeaseReply)
            : ({ type: 'lease.failed', requestId: input.requestId, error } satisfies WriteLeaseReply),
        ),
      () => `${store.kind} ${input.purpose} of ${input.key}`,
    ),
  );

  return { readLease, writeLease };
}
