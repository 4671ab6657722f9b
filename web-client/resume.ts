// What a client needs to carry its requests over to a new connection: each open request's frames
// not received yet (asked again, with the same priority, group and stack positions), the counts of
// what the earlier connections delivered, and when and how soon to try again.
import type { FrameAddress } from './client.js';

/**
 * Closes after which the client reconnects: the server went away or restarts (1001, 1012, 1013),
 * failed (1011), the connection was lost without a close (1005, 1006), or a proxy had no server
 * (1014). Not after a close the client or a policy asked for (1000, 1002, 1003, 1007–1010).
 */
const RESUMABLE = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

export function resumable(code: number): boolean {
  return RESUMABLE.has(code);
}

/**
 * Whether a refused upgrade's HTTP status is worth another attempt: a server full, draining or
 * unreachable behind its proxy (5xx), too many connections from here (429), a request timeout
 * (408); not an Origin refused (403), missing credentials (401) or a wrong path (404), which
 * would be refused again. No status (a browser, which hides it; a network error): tried again.
 */
export function retryableStatus(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 429 || status >= 500;
}

/** How long to wait before reconnect attempt `attempt` (from 1): exponential, with full jitter, capped. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
}

const keyOf = (sopInstanceUid: string, frameNumber: number) => `${sopInstanceUid}\u0000${frameNumber}`;

/** A request the server has not completed: what it asked for, and what of it has come. */
export class OpenRequest {
  /** Copies of each frame still to come (a request may list a frame twice). */
  private readonly left = new Map<string, number>();
  private delivered = 0;
  private failed = 0;
  /** Delivered and failed on earlier connections: the server's summary counts only its own. */
  private carried = { sent: 0, failed: 0 };
  /** The application cancelled it: never asked for again. */
  cancelled = false;

  constructor(readonly frames: readonly FrameAddress[], readonly priority: number, readonly group: number) {
    for (const f of frames) {
      const key = keyOf(f.sopInstanceUid, f.frameNumber);
      this.left.set(key, (this.left.get(key) ?? 0) + 1);
    }
  }

  /** Counts a frame that arrived; false when none of it was still awaited (not to be handed on twice). */
  arrived(sopInstanceUid: string, frameNumber: number): boolean {
    if (!this.take(sopInstanceUid, frameNumber)) return false;
    this.delivered++;
    return true;
  }

  /** A frame the server could not send: not asked for again. */
  failedFrame(sopInstanceUid: string, frameNumber: number): void {
    if (this.take(sopInstanceUid, frameNumber)) this.failed++;
  }

  /**
   * The frames to ask a new connection for, in the order first asked, each at the stack position
   * it had (so focus orders them as before); what came so far is carried into the summary.
   */
  resume(): FrameAddress[] {
    this.carried = { sent: this.delivered, failed: this.failed };
    const wanted = new Map(this.left);
    const out: FrameAddress[] = [];
    this.frames.forEach((f, i) => {
      const key = keyOf(f.sopInstanceUid, f.frameNumber);
      const n = wanted.get(key) ?? 0;
      if (n === 0) return;
      wanted.set(key, n - 1);
      out.push({ sopInstanceUid: f.sopInstanceUid, frameNumber: f.frameNumber, position: f.position ?? i });
    });
    return out;
  }

  /** The request's counts over every connection it was served on. */
  summary(server: { framesSent: number; framesFailed: number }): { framesSent: number; framesFailed: number } {
    return { framesSent: this.carried.sent + server.framesSent, framesFailed: this.carried.failed + server.framesFailed };
  }

  /** Counts as they stand (a request ended on this side). */
  get counts(): { framesSent: number; framesFailed: number } {
    return { framesSent: this.delivered, framesFailed: this.failed };
  }

  private take(sopInstanceUid: string, frameNumber: number): boolean {
    const key = keyOf(sopInstanceUid, frameNumber);
    const n = this.left.get(key) ?? 0;
    if (n === 0) return false;
    if (n === 1) this.left.delete(key);
    else this.left.set(key, n - 1);
    return true;
  }
}
