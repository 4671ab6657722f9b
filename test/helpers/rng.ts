// A small seeded PRNG (mulberry32) for the fuzz and hostile-message tests: the same seed gives
// the same inputs on every machine, so a failure can be replayed from its seed.
export class Rng {
  private state: number;
  constructor(seed: number) { this.state = seed >>> 0; }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }
  uint32(): number { return (this.int(0x10000) * 0x10000 + this.int(0x10000)) >>> 0; }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.uint32();
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = v >>> 24;
    }
    return out;
  }
  /** Weighted choice: [weight, value] pairs. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let x = this.next() * table.reduce((s, [w]) => s + w, 0);
    for (const [w, v] of table) { x -= w; if (x < 0) return v; }
    return table[table.length - 1]![1];
  }
}
