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
    // by release(), and one left by a killed process is taken over like a dead one's.
    if (at.readSync) process.once('exit', lock.onExit);
    for (let attempt = 0; ; attempt++) {
      if (await at.create(LOCK_FILE, Buffer.from(JSON.stringify(owner) + '\n'))) return lock;
      const holder = parseOwner(await at.read(LOCK_FILE).catch(() => undefined));
      // A lock whose owner died on this host (or that cannot be read: a writer killed mid-write) is stale.
      const stale = holder === undefined || (holder.host === owner.host && !processAlive(holder.pid));
      if (!stale || attempt > 0) {
        process.off('exit', lock.onExit);
        throw lockedError(at, holder);
      }
      await at.remove(LOCK_FILE);
    }
  }

  /** Lets go of the lock, if it is still this one's. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    if (this.holds(parseOwner(await this.folder.read(LOCK_FILE).catch(() => undefined)))) await this.folder.remove(LOCK_FILE);
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
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
