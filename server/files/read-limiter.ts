// Runs at most `concurrency` tasks at once, in two FIFO lines: urgent tasks (a viewer is waiting)
// start before background ones (readahead), and a waiting background task can be promoted when
// someone starts waiting for it. In the spirit of ws's lib/limiter.js, plus the second line.

/** A task given to the limiter. */
export interface LimitedTask<T> {
  /** Settles as the task does. */
  readonly done: Promise<T>;
  /** Moves the task to the urgent line if it has not started yet. */
  promote(): void;
}

interface Job {
  run(): void;
  started: boolean;
  promoted: boolean;
}

export class ReadLimiter {
  private readonly urgent: Job[] = [];
  private readonly background: Job[] = [];
  private active = 0;

  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, not ${concurrency}`);
  }

  /** Tasks running now. */
  get running(): number { return this.active; }

  /** Tasks waiting for a slot. */
  get waiting(): number {
    // A promoted job sits in both lines until the background copy is skipped: count it once.
    return this.urgent.length + this.background.filter((j) => !j.started && !j.promoted).length;
  }

  /**
   * Queues `task`. When a slot is free it takes it at once, but the task itself runs a microtask
   * later, never inside add(): the caller can finish recording the task before it runs.
   */
  add<T>(task: () => Promise<T>, urgent: boolean): LimitedTask<T> {
    const job: Job = { run: () => undefined, started: false, promoted: urgent };
    const done = new Promise<T>((resolve, reject) => {
      job.run = () => {
        job.started = true;
        this.active++;
        // The slot is freed before the caller hears, so the next task is already on its way.
        const release = () => { this.active--; this.next(); };
        // A task that throws synchronously rejects like one that rejects.
        Promise.resolve().then(task).then(
          (value) => { release(); resolve(value); },
          (error: unknown) => { release(); reject(error); },
        );
      };
    });
    (urgent ? this.urgent : this.background).push(job);
    this.next();
    return {
      done,
      promote: () => {
        if (job.started || job.promoted) return;
        // Left in the background line too; next() skips it there once it has started.
        job.promoted = true;
        this.urgent.push(job);
        this.next();
      },
    };
  }

  private next(): void {
    while (this.active < this.concurrency) {
      const job = this.urgent.shift() ?? this.background.shift();
      if (!job) return;
      if (!job.started) job.run();
    }
  }
}
