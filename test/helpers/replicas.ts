// dicomstream replicas as an operator runs them (the CLI, each its own process, on a shared
// read-only index) and HAProxy in front of them with the project's own deploy/haproxy.cfg, its
// ports moved to free ones. Everything on 127.0.0.1; stop() ends what was started.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait-for.js';
import { freePort } from './ports.js';

const project = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(project, 'dist', 'server', 'cli.js');
export const HAPROXY_CONFIG = join(project, 'deploy', 'haproxy.cfg');

export interface Replica { port: number; process: ChildProcess; exited: Promise<void> }

/**
 * `dicomstream serve root --index-dir indexDir --read-only-index` on any free port, believing the
 * client's address HAProxy (on loopback) names, as README's replicas do.
 */
export async function startReplica(root: string, indexDir: string, extra: string[] = []): Promise<Replica> {
  const child = spawn(process.execPath, [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn',
    '--index-dir', indexDir, '--read-only-index', '--trust-proxy', 'loopback', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`replica exited before listening: ${err}`)));
  });
  return { port, process: child, exited };
}

export async function stopReplica(r: Replica, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (r.process.exitCode !== null || r.process.signalCode !== null) return;
  r.process.kill(signal);
  const killer = setTimeout(() => r.process.kill('SIGKILL'), 5000);
  await r.exited;
  clearTimeout(killer);
}

export interface Balancer { port: number; stop(): Promise<void> }

/** HAProxy with deploy/haproxy.cfg, bound to a free port, its servers the replicas' ports, checks every `checkMs`. */
export async function startHaproxy(replicaPorts: number[], checkMs = 200): Promise<Balancer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-haproxy-'));
  let config = readFileSync(HAPROXY_CONFIG, 'utf8')
    .replace('bind 127.0.0.1:8080', `bind 127.0.0.1:${port}`)
    .replace(/default-server inter \S+/, `default-server inter ${checkMs}ms`)
    .replace(/^\s+server replica.*\n/gm, '');
  config += replicaPorts.map((p, i) => `    server replica${i + 1} 127.0.0.1:${p} check\n`).join('');
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const listening = () => new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  });
  try {
    await waitFor(async () => child.exitCode === null && await listening(), `haproxy listening (${err})`, 10_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Open WebSocket connections of a replica, from its metrics. */
export async function connectionsOf(r: Replica): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
  const m = /^dicomstream_connections (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}
