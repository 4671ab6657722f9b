// One writer per saved index: a lock file in the index folder naming its owner (pid, host, command,
// since when). A second writer is refused with that owner in the error, never interleaved with the
// first. A lock left by a process that died on this host is taken over; one from another host is
// not (its process cannot be checked from here), and the error says how to remove it.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CodedError } from '../../shared/coded-error.js';
import { processAlive } from '../process-alive.js';

/** Who holds the lock. */
export interface LockOwner { pid: number; host: string; command: string; since: string }

export const LOCK_FILE = 'lock';

export class IndexLock {
  private released = false;
  private readonly onExit = () => this.releaseSync();

  private constructor(readonly path: string, readonly owner: LockOwner) {
    // A process that exits (Ctrl-C on `dicomstream index`) lets go of its lock on the way out.
    process.once('exit', this.onExit);
  }

  /** Takes the lock of index folder `dir` for `command`; throws INDEX_LOCKED when another writer holds it. */
  static async acquire(dir: string, command: string): Promise<IndexLock> {
    await mkdir(dir, { recursive: true });
    const path = join(dir, LOCK_FILE);
    const owner: LockOwner = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() };
    for (let attempt = 0; ; attempt++) {
      try {
        // Synchronous, and the exit hook set in the same turn: a Ctrl-C cannot come in between and
        // leave a lock without anyone to remove it.
        writeFileSync(path, JSON.stringify(owner) + '\n', { flag: 'wx' });
        return new IndexLock(path, owner);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = await readOwner(path);
      // A lock whose owner died on this host (or that cannot be read: a writer killed mid-write) is stale.
      const stale = holder === undefined || (holder.host === owner.host && !processAlive(holder.pid));
      if (!stale || attempt > 0) throw lockedError(dir, path, holder);
      await rm(path, { force: true });
    }
  }

  /** Lets go of the lock, if it is still this one's. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    if (this.holds(await readOwner(this.path))) await rm(this.path, { force: true });
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (this.holds(JSON.parse(readFileSync(this.path, 'utf8')) as LockOwner)) rmSync(this.path, { force: true });
    } catch { /* gone already */ }
  }

  /** Whether the lock file is still this one's (another writer may have taken over a stale one). */
  private holds(holder: LockOwner | undefined): boolean {
    return holder !== undefined && holder.pid === this.owner.pid && holder.since === this.owner.since;
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (typeof owner.pid !== 'number' || typeof owner.host !== 'string') return undefined;
    return { pid: owner.pid, host: owner.host, command: String(owner.command ?? '?'), since: String(owner.since ?? '?') };
  } catch {
    return undefined;
  }
}

function lockedError(dir: string, path: string, holder: LockOwner | undefined): CodedError<'INDEX_LOCKED'> {
  const who = holder ? `pid ${holder.pid} on ${holder.host} (dicomstream ${holder.command}, since ${holder.since})` : 'another process';
  const elsewhere = holder && holder.host !== hostname() ? `; if that process is gone, remove ${path}` : '';
  return new CodedError('INDEX_LOCKED', `the index in ${dir} is being written by ${who}: one writer at a time. ` +
    `Serve it with --read-only-index, or give this one another --index-dir${elsewhere}`);
}
