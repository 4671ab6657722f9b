// Free TCP ports on 127.0.0.1 for the real servers the tests start (Orthanc, HAProxy, Ceph).
import { createServer } from 'node:net';

/** `n` distinct free ports: all held open until each is known (one at a time, the same port can come twice). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
