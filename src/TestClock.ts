import type { ElectionClock } from './clock.js';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A manual clock for tests: nothing happens until `advance(ms)`, which fires every timer due in that span in time
 * order (ties by creation order), including timers those timers set. Unlike XState's SimulatedClock it never skips
 * a repeating timer. `flush()` lets promise callbacks (store replies in tests) run between timers.
 */
export class TestClock implements ElectionClock {
  private time = 0;
  private nextId = 1;
  private readonly timers = new Map<number, Timer>();

  constructor(private wall = 1_700_000_000_000) {}

  now(): number {
    return this.time;
  }

  wallNow(): number {
    return this.wall + this.time;
  }

  setTimeout(fn: (...args: any[]) => void, timeoutMs: number): number {
    const id = this.nextId++;
    this.timers.set(id, { id, at: this.time + Math.max(0, timeoutMs), fn });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.timers.delete(id as number);
  }

  /** Pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].sort(byDue).map((t) => t.at);
  }

  /** Moves time forward by `ms`, firing due timers in order and letting microtasks settle after each. */
  async advance(ms: number): Promise<void> {
    // A monotonic clock: a negative span would let tests model something no real monotonic clock does.
    if (!(ms >= 0)) throw new RangeError(`TestClock.advance(${ms}): the span must be a non-negative number of ms`);
    const end = this.time + ms;
    await flushMicrotasks();
    for (;;) {
      const next = [...this.timers.values()].sort(byDue)[0];
      if (!next || next.at > end) break;
      this.timers.delete(next.id);
      this.time = Math.max(this.time, next.at); // overdue timers (after jump) fire late, as after a real pause
      next.fn();
      await flushMicrotasks();
    }
    // A timer may have jumped the clock past `end` (a pause simulated inside it): never go back.
    this.time = Math.max(this.time, end);
    await flushMicrotasks();
  }

  /** Jumps time forward *without* firing timers in between, as a paused process experiences it. */
  jump(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`TestClock.jump(${ms}): the span must be a non-negative number of ms`);
    this.time += ms;
  }
}

function byDue(a: Timer, b: Timer): number {
  return a.at - b.at || a.id - b.id;
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
