/**
 * The discrete-event scheduler: one queue of callbacks on virtual real time, ordered by (time, sequence number).
 * Every deadline is visited in order — unlike XState's SimulatedClock.increment, which fires a repeating timer once
 * per call — and ties are broken by the order in which the callbacks were scheduled.
 */
export interface SimEvent {
  time: number;
  seq: number;
  /** Owner host, or -1 for the environment (network services, fault schedule). */
  host: number;
  /** Incarnation of the owner when scheduled; a crash makes older events void. */
  incarnation: number;
  cancelled: boolean;
  fn: () => void;
}

export class Scheduler {
  now = 0;
  private seq = 0;
  private readonly heap: SimEvent[] = [];
  /** Events run so far (cheap progress metric). */
  executed = 0;

  at(time: number, host: number, incarnation: number, fn: () => void): SimEvent {
    const event: SimEvent = { time: Math.max(time, this.now), seq: this.seq++, host, incarnation, cancelled: false, fn };
    this.push(event);
    return event;
  }

  /** Re-queues an event (e.g. one frozen by a pause) at a later time with a fresh sequence number. */
  requeue(event: SimEvent, time: number): void {
    event.time = Math.max(time, this.now);
    event.seq = this.seq++;
    this.push(event);
  }

  get size(): number {
    return this.heap.length;
  }

  peekTime(): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Number.POSITIVE_INFINITY;
  }

  pop(): SimEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (!top) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.down(0);
    }
    this.now = top.time;
    return top;
  }

  private push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = event;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[c]!, item)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = item;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
