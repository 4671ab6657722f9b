// One writer per saved index: a lock file in the index folder naming its owner (pid, host, command,
// since when). A second writer is refused with that owner in the error, never interleaved with the
// first. A lock left by a process that died on this host is taken over; one from another host is
// not (its process cannot be checked from here), and the error says how to remove it.
import { hostname } from 'node:os';
import { CodedError } from '../../shared/coded-error.js';
import { processAlive } from '../process-alive.js';
import { LocalIndexFolder, type IndexFolder } from './index-folder.js';

/** Who holds the lock. */
export interface LockOwner { pid: number; host: string; command: string; since: string }

export const LOCK_FILE = 'lock';

/** The locks this process holds now (a second writer in the same process is refused too). */
const held = new Set<IndexLock>();

export class IndexLock {
  private released = false;
  private readonly onExit = () => this.releaseSync();

  private constructor(readonly folder: IndexFolder, readonly owner: LockOwner) {}

  /** Where the lock is, for messages. */
  get path(): string { return this.folder.pathOf(LOCK_FILE); }

  /** Takes the lock of an index folder (or its path) for `command`; throws INDEX_LOCKED when another writer holds it. */
  static async acquire(folder: IndexFolder | string, command: string): Promise<IndexLock> {
    const at = typeof folder === 'string' ? new LocalIndexFolder(folder) : folder;
    const owner: LockOwner = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() };
    const lock = new IndexLock(at, owner);
    // Set before the lock exists: a Ctrl-C right after it is made still removes it (the hook checks
    // that the lock is this one's). A bucket cannot be written on the way out: its lock is let go
    // by release() (and releaseAll(), which the command line calls on a signal).
    if (at.readSync) process.once('exit', lock.onExit);
    for (let attempt = 0; ; attempt++) {
      if (await at.create(LOCK_FILE, Buffer.from(JSON.stringify(owner) + '\n'))) {
        held.add(lock);
        return lock;
      }
      // A read that fails (a store that does not answer) says nothing of the owner: refused, never taken over.
      const bytes = await at.read(LOCK_FILE).catch((e: unknown) => {
        process.off('exit', lock.onExit);
        throw e;
      });
      if (bytes === undefined && attempt < 2) continue; // let go meanwhile: try again
      const holder = parseOwner(bytes);
      // Stale: a lock that does not parse, or whose owner died on this host. A pid of this very
      // process that is not one of its own locks was left by an earlier life under the same pid
      // (a container restarted: pid 1 on the same host name).
      const stale = holder === undefined || (holder.host === owner.host &&
        (holder.pid === process.pid ? ![...held].some((h) => h.owner.since === holder.since) : !processAlive(holder.pid)));
      if (!stale || attempt > 0) {
        process.off('exit', lock.onExit);
        throw lockedError(at, holder);
      }
      await at.remove(LOCK_FILE);
    }
  }

  /** Lets go of every lock this process holds (on a signal, before it exits). */
  static async releaseAll(): Promise<void> {
    await Promise.allSettled([...held].map((lock) => lock.release()));
  }

  /** Lets go of the lock, if it is still this one's. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    held.delete(this);
    process.off('exit', this.onExit);
    if (this.holds(parseOwner(await this.folder.read(LOCK_FILE).catch(() => undefined)))) await this.folder.remove(LOCK_FILE);
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this);
    try {
      if (this.holds(parseOwner(this.folder.readSync?.(LOCK_FILE)))) this.folder.removeSync?.(LOCK_FILE);
    } catch { /* gone already */ }
  }

  /** Whether the lock file is still this one's (another writer may have taken over a stale one). */
  private holds(holder: LockOwner | undefined): boolean {
    return holder !== undefined && holder.pid === this.owner.pid && holder.since === this.owner.since;
  }
}

function parseOwner(bytes: Uint8Array | undefined): LockOwner | undefined {
  if (!bytes) return undefined;
  try {
    const owner = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<LockOwner>;
    if (typeof owner.pid !== 'number' || typeof owner.host !== 'string') return undefined;
    return { pid: owner.pid, host: owner.host, command: String(owner.command ?? '?'), since: String(owner.since ?? '?') };
  } catch {
    return undefined;
  }
}

function lockedError(folder: IndexFolder, holder: LockOwner | undefined): CodedError<'INDEX_LOCKED'> {
  const path = folder.pathOf(LOCK_FILE);
  const dir = folder.location;
  const who = holder ? `pid ${holder.pid} on ${holder.host} (dicomstream ${holder.command}, since ${holder.since})` : 'another process';
  const elsewhere = holder && holder.host !== hostname() ? `; if that process is gone, remove ${path}` : '';
  return new CodedError('INDEX_LOCKED', `the index in ${dir} is being written by ${who}: one writer at a time. ` +
    `Serve it with --read-only-index, or give this one another --index-dir${elsewhere}`);
}
