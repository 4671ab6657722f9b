// Whether a process of this host still runs: what tells a stale lock or marker from a live one.

/** Signal 0 checks without sending anything; EPERM means alive, another user's. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
