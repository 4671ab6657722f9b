// A process in a mount namespace of its own (util-linux `unshare -m`, as root), so a test can give
// it a read-only medium or a small full disk without touching the machine's mounts. The test reaches
// the namespace's mounts through /proc/<pid>/root.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from './wait-for.js';

/** Whether this machine lets a test make mount namespaces (root and util-linux's unshare). */
export function mountNamespaces(): boolean {
  return spawnSync('unshare', ['-m', 'true']).status === 0;
}

export interface NamespacedProcess {
  child: ChildProcess;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
  /** A path as the process sees it (inside its namespace). */
  seen(path: string): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Runs `setup` (shell, e.g. mounts) then execs `command` in a new mount namespace. */
export function inMountNamespace(setup: string, command: string[]): NamespacedProcess {
  const quoted = command.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${setup} && exec ${quoted}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    seen: (path) => join(`/proc/${child.pid}/root`, path),
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The URL a `dicomstream serve` printed once it serves. */
export async function servingUrl(p: NamespacedProcess, timeoutMs = 20_000): Promise<string> {
  await waitFor(() => /listening on (\S+)/.test(p.stdout()) || p.child.exitCode !== null, 'the server to listen', timeoutMs);
  const m = /listening on (\S+)/.exec(p.stdout());
  if (!m) throw new Error(`the server did not start: ${p.stderr()}`);
  return m[1]!;
}
