// A token bucket of client messages: `perSecond` on average, a burst of twice that. The clock is
// injectable so the rule is tested without waiting.
export class RateLimit {
  private tokens: number;
  private refilledAt: number;

  /** perSecond 0: no limit. */
  constructor(private readonly perSecond: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = 2 * perSecond;
    this.refilledAt = now();
  }

  /** Takes a token (refilled at the allowed rate since the last call); false when the bucket is empty. */
  take(): boolean {
    const rate = this.perSecond;
    if (!rate) return true;
    const now = this.now();
    this.tokens = Math.min(2 * rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
