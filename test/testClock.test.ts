import { describe, expect, it } from 'vitest';
import { TestClock } from '../src/TestClock.js';

describe('TestClock', () => {
  it('is monotonic: a pause simulated inside a timer (jump) is not undone by advance()', async () => {
    const clock = new TestClock();
    clock.setTimeout(() => clock.jump(1000), 10);
    await clock.advance(100);
    expect(clock.now()).toBeGreaterThanOrEqual(1010);
  });

  it('is monotonic: advance() with a negative span does not move time back', async () => {
    const clock = new TestClock();
    await clock.advance(100);
    await expect(clock.advance(-50)).rejects.toThrow(RangeError);
    expect(clock.now()).toBeGreaterThanOrEqual(100);
  });
});
