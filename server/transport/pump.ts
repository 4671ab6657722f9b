// Moves chunks from the scheduler to the sockets: a few workers, each taking the next chunk the
// scheduler chooses, reading it (frame cache or positional read) straight into a reused buffer
// behind its header, and handing it to the client's socket. Workers stop when nothing can be sent
// (no work, full sockets, closed windows); `kick()` starts them again when that changes.
import type { Chunk, Scheduler } from './scheduler.js';

/** What the pump needs of a connection. */
export interface PumpTarget<F> {
  /** The socket has room for another chunk. */
  ready(): boolean;
  /**
   * Reads the chunk and sends it, unless `stillWanted()` says it was cancelled meanwhile (then
   * resolves false); rejects when the frame cannot be read.
   */
  sendChunk(chunk: Chunk<F>, stillWanted: () => boolean): Promise<boolean>;
  /** After each chunk sent or failed: the frame failed (`error`), or requests finished. */
  settled(chunk: Chunk<F>, finished: number[], error?: Error): void;
}

/** Longest stretch of sending without letting the event loop run. */
const YIELD_EVERY_MS = 5;

export class Pump<F> {
  private running = 0;

  constructor(
    private readonly scheduler: Scheduler<F>,
    private readonly targets: Map<number, PumpTarget<F>>,
    private readonly concurrency = 4,
  ) {}

  /** Something changed (new work, a drained socket, a window grant): start idle workers. */
  kick(): void {
    // A started worker takes its chunk at once (synchronously), so hasWork() sees what is left.
    while (this.running < this.concurrency && this.hasWork()) {
      this.running++;
      void this.work().finally(() => {
        this.running--;
        // What a worker could not take when it looked may be takeable now.
        if (this.hasWork()) this.kick();
      });
    }
  }

  private readonly ready = (id: number): boolean => this.targets.get(id)?.ready() ?? false;

  private hasWork(): boolean {
    return this.scheduler.peek(this.ready);
  }

  private async work(): Promise<void> {
    let since = performance.now();
    for (;;) {
      // Chunks read from memory resolve without a turn of the event loop: give it one every few
      // milliseconds, or one big request of cached frames would hold every other socket (its own
      // cancel too) until it is all sent. Before taking a chunk, never between taking it and
      // counting its bytes against the connection's bound.
      if (performance.now() - since > YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
      const chunk = this.scheduler.next(this.ready);
      if (!chunk) return;
      const target = this.targets.get(chunk.clientId);
      if (!target) {
        this.scheduler.done(chunk, true);
        continue;
      }
      try {
        const sent = await target.sendChunk(chunk, () => this.scheduler.isCurrent(chunk!));
        if (!sent) this.scheduler.refund(chunk);
        const finished = this.scheduler.done(chunk);
        if (sent) target.settled(chunk, finished);
      } catch (e) {
        this.scheduler.refund(chunk);
        const wanted = this.scheduler.isCurrent(chunk);
        const finished = this.scheduler.done(chunk, true);
        if (wanted) target.settled(chunk, finished, e as Error);
      }
    }
  }
}
