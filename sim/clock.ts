/**
 * Node clocks, modelled as TigerBeetle's simulator does: the monotonic clock and the wall clock are kept apart.
 *
 * - Monotonic: `offset + ∫ rate(t) dt`, where `rate = 1 + drift(t) ± wobble` — linear drift (changed by scheduled
 *   `drift` faults) plus a periodic wobble (a square wave in rate, i.e. a triangle wave in offset). The whole function
 *   is known up front (drift changes come from the fault schedule), so a local deadline maps to one real instant.
 * - Wall: follows the monotonic rate from its own offset, plus step jumps (NTP steps, operators) applied as they
 *   happen. Only `wallNow()` sees them; the protocol never decides anything on wall time.
 */
export interface ClockSpec {
  /** Monotonic reading at real time 0 (any size: monotonic clocks count from boot). */
  readonly offsetMs: number;
  /** Linear drift rate: +0.01 runs 1 % fast, −0.01 runs 1 % slow. */
  readonly driftRate: number;
  /** Amplitude of the periodic rate wobble (added to/subtracted from the drift, alternating every half period). */
  readonly wobbleRate: number;
  readonly wobblePeriodMs: number;
  /** Wall clock at real time 0, ms since the Unix epoch. */
  readonly wallStartMs: number;
}

export interface DriftChange {
  readonly at: number;
  readonly driftRate: number;
}

export class ClockModel {
  private readonly bt: number[] = [0];
  private readonly bl: number[];
  private readonly rate: number[];
  private readonly half: number;
  private readonly changes: DriftChange[];
  private cursor = 0;
  private wallJump = 0;

  constructor(
    readonly spec: ClockSpec,
    changes: readonly DriftChange[] = [],
  ) {
    this.changes = [...changes].sort((a, b) => a.at - b.at);
    this.half = spec.wobbleRate > 0 && spec.wobblePeriodMs > 0 ? spec.wobblePeriodMs / 2 : 0;
    this.bl = [spec.offsetMs];
    this.rate = [this.rateAt(0)];
  }

  /** The slowest and fastest rate this clock ever runs at (for the checkers' assumptions). */
  rateBounds(): { slowest: number; fastest: number } {
    const drifts = [this.spec.driftRate, ...this.changes.map((c) => c.driftRate)];
    return {
      slowest: 1 + Math.min(...drifts) - this.spec.wobbleRate,
      fastest: 1 + Math.max(...drifts) + this.spec.wobbleRate,
    };
  }

  /** Monotonic reading at real time t. */
  local(t: number): number {
    const i = this.segmentOfReal(t);
    return this.bl[i]! + this.rate[i]! * (t - this.bt[i]!);
  }

  /** Earliest real time at which the monotonic clock reads at least `l`. */
  realAt(l: number): number {
    const i = this.segmentOfLocal(l);
    let t = this.bt[i]! + (l - this.bl[i]!) / this.rate[i]!;
    if (t < this.bt[i]!) t = this.bt[i]!;
    // Floating point may land a hair early; a timer must never fire before its deadline on the node's own clock.
    while (this.local(t) < l) t += Math.max(Math.abs(t) * Number.EPSILON, Number.MIN_VALUE);
    return t;
  }

  wall(t: number): number {
    return this.spec.wallStartMs + (this.local(t) - this.spec.offsetMs) + this.wallJump;
  }

  jumpWall(ms: number): void {
    this.wallJump += ms;
  }

  private driftAt(t: number): number {
    let d = this.spec.driftRate;
    for (const c of this.changes) {
      if (c.at > t) break;
      d = c.driftRate;
    }
    return d;
  }

  private rateAt(t: number): number {
    let r = 1 + this.driftAt(t);
    if (this.half > 0) r += Math.floor(t / this.half) % 2 === 0 ? this.spec.wobbleRate : -this.spec.wobbleRate;
    return Math.max(r, 1e-6);
  }

  private nextBoundary(t: number): number {
    let next = Number.POSITIVE_INFINITY;
    if (this.half > 0) {
      let k = Math.floor(t / this.half) + 1;
      while (k * this.half <= t) k++;
      next = k * this.half;
    }
    for (const c of this.changes) {
      if (c.at > t) {
        if (c.at < next) next = c.at;
        break;
      }
    }
    return next;
  }

  private extend(): boolean {
    const i = this.bt.length - 1;
    const t0 = this.bt[i]!;
    const t1 = this.nextBoundary(t0);
    if (t1 === Number.POSITIVE_INFINITY) return false;
    this.bt.push(t1);
    this.bl.push(this.bl[i]! + this.rate[i]! * (t1 - t0));
    this.rate.push(this.rateAt(t1));
    return true;
  }

  private segmentOfReal(t: number): number {
    let i = this.cursor;
    if (this.bt[i]! > t) i = 0;
    for (;;) {
      if (i + 1 >= this.bt.length && !this.extend()) break;
      if (i + 1 < this.bt.length && this.bt[i + 1]! <= t) i++;
      else break;
    }
    this.cursor = i;
    return i;
  }

  private segmentOfLocal(l: number): number {
    let i = this.bl[this.cursor]! <= l ? this.cursor : 0;
    for (;;) {
      if (i + 1 >= this.bt.length && !this.extend()) break;
      if (i + 1 < this.bt.length && this.bl[i + 1]! <= l) i++;
      else break;
    }
    return i;
  }
}
