// A real S3-compatible store for the tests and benchmarks: Ceph's RADOS Gateway from Debian's
// packages (radosgw, ceph-mon, ceph-osd), one monitor, one OSD keeping objects in memory
// (memstore) and one radosgw (beast) on 127.0.0.1, all under a temp folder with its own ceph.conf
// and no authentication between the daemons. A user made with radosgw-admin gives the S3 keys.
// Starts in about 2 s; stop() ends the daemons and removes the folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './ports.js';
import { waitFor } from './wait-for.js';

export interface Rgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** radosgw's log (one line per request). */
  gatewayLog: string;
  /** The environment a dicomstream process needs to reach the store. */
  env: Record<string, string>;
  /** Freezes the gateway (SIGSTOP): connections open, nothing answered, as a hung store; thaw() lets it go on. */
  freezeGateway(): void;
  thawGateway(): void;
  /** Stops the gateway only (the store keeps its objects); start() brings it back on the same port. */
  stopGateway(): Promise<void>;
  startGateway(): Promise<void>;
  stop(): Promise<void>;
}

/** Whether the Debian packages are installed (.ci/run installs them). */
export function rgwInstalled(): boolean {
  return ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool'].every((b) => spawnSync('which', [b]).status === 0);
}

/** Starts the store; a start that still hangs (radosgw not answering in 30 s) is tried once more, afresh. */
export async function startRgw(): Promise<Rgw> {
  try {
    return await startRgwOnce(30_000);
  } catch {
    return startRgwOnce(60_000);
  }
}

async function startRgwOnce(answerWithinMs: number): Promise<Rgw> {
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-rgw-'));
  for (const sub of ['mon', 'osd', 'run', 'log']) mkdirSync(join(dir, sub));
  const [monPort, rgwPort] = await freePorts(2) as [number, number];
  const fsid = randomUUID();
  const conf = join(dir, 'ceph.conf');
  writeFileSync(conf, `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
auth cluster required = none
auth service required = none
auth client required = none
# Without it, radosgw loops on get_initial_auth_request returned -13 for 300 s with auth off.
ms mon client mode = crc secure
ms bind msgr2 = false
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# An OSD that updates its own crush location at boot may send that command before it has the
# monitor's map ('wrong fsid'), and then never comes up: it is placed in the crush map here instead.
osd crush update on start = false
osd class update on start = false
# The monitor stops itself under 5 % free disk by default.
mon data avail crit = 1
mon data avail warn = 2
# 1 s by default: start-up takes ~14 s then.
paxos propose interval = 0.05
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
[mon.a]
mon data = ${dir}/mon
[osd.0]
osd data = ${dir}/osd
[client.rgw]
# Without tcp_nodelay small ranged GETs take ~48 ms.
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
`);
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, ['-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const daemons: ChildProcess[] = [];
  const daemon = (cmd: string, args: string[]): ChildProcess => {
    const child = spawn(cmd, ['-c', conf, ...args, '-f'], { stdio: 'ignore' });
    daemons.push(child);
    return child;
  };
  let gateway: ChildProcess | undefined;
  const stopped = (child: ChildProcess) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
  const stopAll = async () => {
    for (const child of daemons) child.kill('SIGKILL');
    await Promise.all(daemons.map(stopped));
    if (!process.env.DICOMSTREAM_KEEP_RGW) rmSync(dir, { recursive: true, force: true });
  };
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const answering = async () => {
    try {
      return (await fetch(endpoint + '/')).status === 200;
    } catch {
      return false;
    }
  };
  try {
    const monmap = join(dir, 'monmap');
    const made = spawnSync('monmaptool', ['--create', '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, '--fsid', fsid, monmap], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`monmaptool failed: ${made.stderr}`);
    run('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap]);
    daemon('ceph-mon', ['-i', 'a']);
    // The monitor must have formed its quorum first: a command sent before gets 'wrong fsid', and an
    // OSD made then never boots (radosgw then waits for it forever).
    await waitFor(() => {
      const r = spawnSync('ceph', ['-c', conf, '--connect-timeout', '3', 'mon', 'stat'], { encoding: 'utf8', timeout: 5000 });
      return r.status === 0 && /quorum 0/.test(r.stdout);
    }, 'the monitor\'s quorum', 30_000);
    run('ceph', ['osd', 'create']);
    run('ceph', ['osd', 'crush', 'add', 'osd.0', '1.0', 'root=default']);
    run('ceph-osd', ['-i', '0', '--mkfs']);
    daemon('ceph-osd', ['-i', '0']);
    gateway = daemon('radosgw', ['-n', 'client.rgw']);
    await waitFor(answering, 'radosgw answering', answerWithinMs);
    const user = JSON.parse(run('radosgw-admin', ['user', 'create', '--uid=dicomstream', '--display-name=dicomstream'])) as {
      keys: Array<{ access_key: string; secret_key: string }>;
    };
    const { access_key: accessKeyId, secret_key: secretAccessKey } = user.keys[0]!;
    return {
      endpoint, accessKeyId, secretAccessKey, gatewayLog: join(dir, 'log', 'client.rgw.log'),
      env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: 'us-east-1' },
      freezeGateway() { gateway?.kill('SIGSTOP'); },
      thawGateway() { gateway?.kill('SIGCONT'); },
      async stopGateway() {
        if (!gateway) return;
        gateway.kill('SIGKILL');
        await stopped(gateway);
        gateway = undefined;
      },
      async startGateway() {
        gateway = daemon('radosgw', ['-n', 'client.rgw']);
        await waitFor(answering, 'radosgw answering again', 60_000);
      },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
