// Open file handles shared by all reads: a file is opened once while it is in use and closed
// after it has been idle a while, or when too many are open. Opens and closes of one path are
// queued one after another, so a read never races a close.
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { inside } from '../index/path-inside.js';
import { CodedError } from '../../shared/coded-error.js';

interface Entry {
  path: string;
  /** The open handle, or the open in progress. */
  handle: Promise<FileHandle>;
  users: number;
  lastUsed: number;
  /** Called when the last user is done, while a close waits for it. */
  onIdle?: () => void;
  /** The file's size and mtime when it was opened. */
  opened: OpenedStamp;
}

/** Size and modification time of a file when its handle was opened. */
export interface OpenedStamp { size: number; mtimeMs: number }

export interface HandlePoolOptions {
  /** Handles kept open at most (more may be open while all are in use). */
  maxOpen?: number;
  /** Close a handle unused for this long. */
  idleMs?: number;
  /**
   * Only open files whose real path (symbolic links resolved) lies in this folder: a link changed
   * to point elsewhere after indexing is refused at open.
   */
  confineTo?: string;
}

export interface HandlePoolStats {
  open: number;
  opens: number;
  closes: number;
}

export class HandlePool {
  private readonly entries = new Map<string, Entry>();
  /** Per path, the last open or close queued: the next one starts after it. */
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly maxOpen: number;
  private readonly idleMs: number;
  private readonly confineTo: string | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  readonly stats: HandlePoolStats = { open: 0, opens: 0, closes: 0 };

  constructor(options: HandlePoolOptions = {}) {
    this.maxOpen = options.maxOpen ?? 128;
    this.idleMs = options.idleMs ?? 10_000;
    this.confineTo = options.confineTo;
    this.sweeper = setInterval(() => this.closeIdle(Date.now() - this.idleMs), Math.max(100, this.idleMs / 2));
    this.sweeper.unref();
  }

  /** Runs `use` with an open handle on `path`; the handle stays open for the next user. */
  async with<T>(path: string, use: (handle: FileHandle, opened: OpenedStamp) => Promise<T>): Promise<T> {
    if (this.closed) throw new CodedError('FILES_CLOSED', 'handle pool is closed');
    let entry = this.entries.get(path);
    if (!entry) {
      let opening!: Entry;
      const handle = this.queue(path, async () => {
        const h = await open(await this.confined(path), 'r');
        this.stats.opens++;
        this.stats.open++;
        try {
          const s = await h.stat();
          opening.opened = { size: s.size, mtimeMs: s.mtimeMs };
        } catch (e) {
          await h.close().catch(() => undefined);
          this.stats.open--;
          throw e;
        }
        return h;
      });
      entry = { path, handle, users: 0, lastUsed: Date.now(), opened: { size: -1, mtimeMs: -1 } };
      opening = entry;
      this.entries.set(path, entry);
      // A failed open leaves no entry behind: the next read tries again.
      handle.catch(() => { if (this.entries.get(path) === entry) this.entries.delete(path); });
      if (this.entries.size > this.maxOpen) this.closeIdle(Infinity, this.entries.size - this.maxOpen);
    }
    entry.users++;
    try {
      const handle = await entry.handle;
      return await use(handle, entry.opened);
    } finally {
      entry.users--;
      entry.lastUsed = Date.now();
      if (entry.users === 0) entry.onIdle?.();
    }
  }

  /** The path to open: itself, or with `confineTo` its real path, refused when it leads outside. */
  async confined(path: string): Promise<string> {
    const root = this.confineTo;
    if (root === undefined) return path;
    const real = await realpath(path);
    if (!inside(root, real)) throw new CodedError('FILE_OUTSIDE_ROOT', 'the file lies outside the served folder (a symbolic link leads out)');
    return real;
  }

  /** Closes the handle of a path that changed or vanished, once its current users are done. */
  forget(path: string): void {
    const entry = this.entries.get(path);
    if (entry) this.retire(entry);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const entry of [...this.entries.values()]) this.retire(entry);
    await this.settled();
  }

  /** Resolves once every open and close queued so far has finished (closes wait for their users). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending.values()]);
  }

  private closeIdle(usedBefore: number, atMost = Infinity): void {
    const idle = [...this.entries.values()].filter((e) => e.users === 0 && e.lastUsed <= usedBefore).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of idle.slice(0, atMost)) this.retire(entry);
  }

  private retire(entry: Entry): void {
    if (this.entries.get(entry.path) === entry) this.entries.delete(entry.path);
    // Users hold the promise of the handle: the last of them to finish lets the close go on.
    const waitForUsers = (): Promise<void> =>
      entry.users === 0 ? Promise.resolve() : new Promise((resolve) => { entry.onIdle = resolve; });
    void this.queue(entry.path, async () => {
      const handle = await entry.handle.catch(() => undefined);
      if (!handle) return;
      await waitForUsers();
      await handle.close().catch(() => undefined);
      this.stats.closes++;
      this.stats.open--;
    });
  }

  private queue<T>(path: string, op: () => Promise<T>): Promise<T> {
    const before = this.pending.get(path) ?? Promise.resolve();
    const run = before.then(op, op);
    const settled = run.catch(() => undefined);
    this.pending.set(path, settled);
    void settled.then(() => { if (this.pending.get(path) === settled) this.pending.delete(path); });
    return run;
  }
}
