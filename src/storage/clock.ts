/**
 * All time in usagedb comes from a Clock, so tests run the engine on simulated time.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (UTC). */
  nowMs(): number;
  /** High-resolution monotonic milliseconds, for measuring durations only. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private currentMs: number;
  constructor(startMs: number) {
    this.currentMs = startMs;
  }
  nowMs(): number {
    return this.currentMs;
  }
  monotonicMs(): number {
    return this.currentMs;
  }
  advance(deltaMs: number): void {
    if (deltaMs < 0) throw new Error(`ManualClock.advance: negative delta ${deltaMs}`);
    this.currentMs += deltaMs;
  }
  set(nowMs: number): void {
    this.currentMs = nowMs;
  }
}
