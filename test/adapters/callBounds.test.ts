import { describe, expect, it } from 'vitest';
import { boundCall, GRACE_MS } from '../../src/adapters/callBounds.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const timeoutError = () => new Error('timed out');

describe('boundCall', () => {
  it('resolves with the reply when nothing aborts', async () => {
    await expect(boundCall(new AbortController().signal, 1000, timeoutError, async () => 42)).resolves.toBe(42);
  });

  it('rejects at once with the reason of an already aborted signal, without running the work', async () => {
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    let ran = false;
    await expect(boundCall(controller.signal, 1000, timeoutError, async () => (ran = true))).rejects.toThrow('gone');
    expect(ran).toBe(false);
  });

  it('never starts the work of a call whose budget is spent before it starts (timeoutMs 0 or less)', async () => {
    for (const budget of [0, -5]) {
      let ran = false;
      await expect(
        boundCall(undefined, budget, timeoutError, async () => {
          ran = true;
        }),
      ).rejects.toThrow('timed out');
      expect(ran).toBe(false);
    }
  });

  it('drops a reply that arrives after an abort noticed only on completion (within the grace period)', async () => {
    const controller = new AbortController();
    const pending = boundCall(controller.signal, 1000, timeoutError, async () => {
      controller.abort(new Error('gave up'));
      return 'late';
    });
    await expect(pending).rejects.toThrow('gave up');
  });

  it('rejects a young call within the grace period of an abort, and runs its clean-ups', async () => {
    const controller = new AbortController();
    const abandoned: unknown[] = [];
    const pending = boundCall(controller.signal, 10_000, timeoutError, (scope) => {
      scope.onAbandon((reason) => abandoned.push(reason));
      return new Promise<never>(() => {});
    });
    const reason = new Error('gave up');
    const started = performance.now();
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(GRACE_MS + 50);
    expect(abandoned).toEqual([reason]);
  });

  it('rejects a promoted call as soon as its signal aborts', async () => {
    const controller = new AbortController();
    const pending = boundCall(controller.signal, 10_000, timeoutError, () => new Promise<never>(() => {}));
    await sleep(GRACE_MS + 20);
    const started = performance.now();
    setTimeout(() => controller.abort(new Error('now')), 0);
    await expect(pending).rejects.toThrow('now');
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('times out at timeoutMs after the start, with or without a signal, and ignores the reply after that', async () => {
    for (const signal of [undefined, new AbortController().signal]) {
      let answer!: (v: string) => void;
      const started = performance.now();
      const pending = boundCall(signal, 120, timeoutError, () => new Promise<string>((r) => (answer = r)));
      await expect(pending).rejects.toThrow('timed out');
      const took = performance.now() - started;
      expect(took).toBeGreaterThanOrEqual(115);
      expect(took).toBeLessThan(300);
      answer('late');
    }
  });

  it('bounds a budget shorter than the grace period by its own timer', async () => {
    const started = performance.now();
    await expect(boundCall(undefined, 1, timeoutError, () => new Promise<never>(() => {}))).rejects.toThrow('timed out');
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('keeps many overlapping calls independent', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        boundCall(undefined, 60, timeoutError, () => new Promise((r) => setTimeout(() => r(i), i % 2 === 0 ? 1 : 200))),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(results.map((_, i) => (i % 2 === 0 ? 'fulfilled' : 'rejected')));
  });

  it('turns a synchronous throw of the work into a rejection', async () => {
    await expect(
      boundCall(undefined, 1000, timeoutError, () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
  });
});
