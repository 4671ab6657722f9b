// Which chunk goes out next, across every client: pure (no I/O, no timers), so it can be tested
// chunk by chunk. Work is kept in frame groups (what one viewport of one client wants from one
// series). The order:
//   1. the highest priority among groups that can send (their client has socket room and window);
//   2. weighted round-robin between the clients that have such groups, chunk by chunk;
//   3. weighted round-robin between that client's groups of that priority;
//   4. within a group, the frame in progress, else the queued frame nearest the group's focus
//      (p, p+1, p-1, p+2, …), else the oldest.
// So a 30 MB frame in one group never holds up a 512 KB slice in another: they alternate chunks.

import { CodedError } from '../../shared/coded-error.js';
import type { GroupSettings } from '../../shared/protocol.js';

export type { GroupSettings };

/** One frame to send: opaque to the scheduler but for its length. */
export interface Work<F> {
  requestId: number;
  /** Position in the group's stack (for focus ordering). */
  position: number;
  frame: F;
  length: number;
}

export interface Chunk<F> {
  clientId: number;
  groupId: number;
  item: Item<F>;
  offset: number;
  length: number;
  /** This chunk ends its frame. */
  last: boolean;
}

export interface Item<F> extends Work<F> {
  /** Bytes handed out in chunks so far. */
  sent: number;
  /** A chunk of it is being read or written: the next waits, so a frame's chunks stay in order. */
  busy: boolean;
  seq: number;
}

interface Group<F> {
  id: number;
  priority: number;
  weight: number;
  focus: number | undefined;
  /** Smooth weighted round-robin credit. */
  credit: number;
  queued: Item<F>[];
  current: Item<F> | undefined;
  /** Requests with frames in this group, and how many frames each still has here. */
  open: Map<number, number>;
}

interface Client<F> {
  id: number;
  weight: number;
  credit: number;
  /** Bytes the client lets us send ahead; Infinity when it does no flow control. */
  window: number;
  groups: Map<number, Group<F>>;
  /** Which group each open request is in. */
  requests: Map<number, number>;
}

export interface SchedulerOptions {
  chunkBytes: number;
}

export interface CancelResult<F> {
  /** Frames dropped (not sent, or stopped part-way). */
  dropped: Item<F>[];
  /** Requests that ended because of it. */
  requests: number[];
}

export class Scheduler<F> {
  /** Scratch list for next(), reused. */
  private readonly eligible: Client<F>[] = [];
  private readonly clients = new Map<number, Client<F>>();
  private seq = 0;

  constructor(private readonly options: SchedulerOptions) {}

  addClient(clientId: number, options: { weight?: number; window?: number } = {}): void {
    this.clients.set(clientId, {
      id: clientId, weight: positive(options.weight, 1), credit: 0, window: options.window && options.window > 0 ? options.window : Infinity,
      groups: new Map(), requests: new Map(),
    });
  }

  removeClient(clientId: number): void {
    this.clients.delete(clientId);
  }

  /** Creates or changes a group; moving its focus re-orders what is queued. */
  updateGroup(clientId: number, groupId: number, settings: GroupSettings): void {
    const group = this.group(clientId, groupId, settings);
    if (settings.priority !== undefined) group.priority = settings.priority;
    if (settings.weight !== undefined) group.weight = positive(settings.weight, 1);
    if (settings.focus !== undefined && settings.focus !== group.focus) {
      group.focus = settings.focus;
      sortByFocus(group);
    }
  }

  /** Queues a request's frames in a group. */
  enqueue(clientId: number, groupId: number, work: Work<F>[], settings: GroupSettings = {}): void {
    const client = this.client(clientId);
    const group = this.group(clientId, groupId, settings);
    if (settings.priority !== undefined) group.priority = settings.priority;
    for (const w of work) group.queued.push({ ...w, sent: 0, busy: false, seq: this.seq++ });
    const requestId = work[0]?.requestId;
    if (requestId === undefined) return;
    group.open.set(requestId, (group.open.get(requestId) ?? 0) + work.length);
    client.requests.set(requestId, groupId);
    sortByFocus(group);
  }

  /** Adds to the bytes a client lets us send ahead. */
  grant(clientId: number, bytes: number): void {
    const client = this.clients.get(clientId);
    if (client && Number.isFinite(client.window)) client.window += Math.max(0, bytes);
  }

  window(clientId: number): number {
    return this.clients.get(clientId)?.window ?? 0;
  }

  hasRequest(clientId: number, requestId: number): boolean {
    return this.clients.get(clientId)?.requests.has(requestId) ?? false;
  }

  /** Frames of all clients' open requests not yet sent whole. */
  queuedFramesInAll(): number {
    let n = 0;
    for (const id of this.clients.keys()) n += this.queuedFrames(id);
    return n;
  }

  /** Frames of a client's open requests not yet sent whole. */
  queuedFrames(clientId: number): number {
    let n = 0;
    for (const group of this.clients.get(clientId)?.groups.values() ?? []) for (const left of group.open.values()) n += left;
    return n;
  }

  openRequests(clientId: number): number {
    return this.clients.get(clientId)?.requests.size ?? 0;
  }

  /** Stops a request: its queued frames are dropped, a frame in progress stops at this chunk boundary. */
  cancelRequest(clientId: number, requestId: number): CancelResult<F> {
    const client = this.clients.get(clientId);
    const groupId = client?.requests.get(requestId);
    const group = groupId === undefined ? undefined : client!.groups.get(groupId);
    if (!client || !group) return { dropped: [], requests: [] };
    const dropped = group.queued.filter((i) => i.requestId === requestId);
    group.queued = group.queued.filter((i) => i.requestId !== requestId);
    if (group.current?.requestId === requestId) {
      dropped.push(group.current);
      group.current = undefined;
    }
    group.open.delete(requestId);
    client.requests.delete(requestId);
    this.dropIfEmpty(client, group);
    return { dropped, requests: [requestId] };
  }

  /** Stops every request of a group. */
  cancelGroup(clientId: number, groupId: number): CancelResult<F> {
    const client = this.clients.get(clientId);
    const group = client?.groups.get(groupId);
    if (!client || !group) return { dropped: [], requests: [] };
    const requests = [...group.open.keys()];
    const dropped: Item<F>[] = [];
    for (const r of requests) dropped.push(...this.cancelRequest(clientId, r).dropped);
    return { dropped, requests };
  }

  /**
   * The next chunk, among clients for which `ready` says the socket has room; undefined when
   * nothing can go now. The chunk is taken: its bytes count as sent and against the window.
   */
  next(ready: (clientId: number) => boolean): Chunk<F> | undefined {
    // Called once per chunk with every client: no allocation per client on this path.
    let best = -Infinity;
    const eligible = this.eligible;
    eligible.length = 0;
    for (const client of this.clients.values()) {
      if (client.window <= 0 || client.groups.size === 0 || !ready(client.id)) continue;
      let top = -Infinity;
      for (const g of client.groups.values()) if (g.priority > top && sendable(g)) top = g.priority;
      if (top === -Infinity || top < best) continue;
      if (top > best) { best = top; eligible.length = 0; }
      eligible.push(client);
    }
    if (!eligible.length) return undefined;
    const client = pickWeighted(eligible);
    eligible.length = 0;
    const groups: Group<F>[] = [];
    for (const g of client.groups.values()) if (g.priority === best && sendable(g)) groups.push(g);
    const group = pickWeighted(groups);
    const item = group.current ?? group.queued.shift()!;
    group.current = item;
    const length = Math.min(this.options.chunkBytes, item.length - item.sent, client.window);
    const chunk: Chunk<F> = { clientId: client.id, groupId: group.id, item, offset: item.sent, length, last: item.sent + length >= item.length };
    item.sent += length;
    item.busy = true;
    if (Number.isFinite(client.window)) client.window -= length;
    return chunk;
  }

  /**
   * The chunk was read and handed to the socket (or failed: `failed` drops its frame). Returns the
   * requests this finished, if any.
   */
  done(chunk: Chunk<F>, failed = false): number[] {
    const { item } = chunk;
    item.busy = false;
    const client = this.clients.get(chunk.clientId);
    const group = client?.groups.get(chunk.groupId);
    if (!client || !group || group.current !== item) return []; // cancelled meanwhile
    if (!chunk.last && !failed) return [];
    group.current = undefined;
    const left = (group.open.get(item.requestId) ?? 1) - 1;
    if (left > 0) {
      group.open.set(item.requestId, left);
      this.dropIfEmpty(client, group);
      return [];
    }
    group.open.delete(item.requestId);
    client.requests.delete(item.requestId);
    this.dropIfEmpty(client, group);
    return [item.requestId];
  }

  /**
   * The chunk's bytes did not go out (its read failed, or its frame was cancelled while it was
   * read): they go back to the client's window, which the client will never grant back for them.
   */
  refund(chunk: Chunk<F>): void {
    const client = this.clients.get(chunk.clientId);
    if (client && Number.isFinite(client.window)) client.window += chunk.length;
  }

  /** Whether a chunk's frame is still wanted (not cancelled since the chunk was taken). */
  isCurrent(chunk: Chunk<F>): boolean {
    return this.clients.get(chunk.clientId)?.groups.get(chunk.groupId)?.current === chunk.item;
  }

  /** Whether next() would give a chunk now (without taking it). */
  peek(ready: (clientId: number) => boolean): boolean {
    for (const client of this.clients.values()) {
      if (client.window <= 0 || !ready(client.id)) continue;
      for (const g of client.groups.values()) if (sendable(g)) return true;
    }
    return false;
  }

  /** Frames a group will send next (for readahead), the one in progress first. */
  upcoming(clientId: number, groupId: number, count: number): F[] {
    const group = this.clients.get(clientId)?.groups.get(groupId);
    if (!group) return [];
    // Called for every frame: only the first `count` are looked at, never the whole queue.
    const out: F[] = [];
    if (group.current && count > 0) out.push(group.current.frame);
    for (let i = 0; out.length < count && i < group.queued.length; i++) out.push(group.queued[i]!.frame);
    return out;
  }

  private client(clientId: number): Client<F> {
    const client = this.clients.get(clientId);
    if (!client) throw new CodedError('INTERNAL', `unknown client ${clientId}`);
    return client;
  }

  private group(clientId: number, groupId: number, settings: GroupSettings): Group<F> {
    const client = this.client(clientId);
    let group = client.groups.get(groupId);
    if (!group) {
      group = {
        id: groupId, priority: settings.priority ?? 0, weight: positive(settings.weight, 1), focus: settings.focus,
        credit: 0, queued: [], current: undefined, open: new Map(),
      };
      client.groups.set(groupId, group);
    }
    return group;
  }

  /** Implicit groups (negative ids: one per request) go when their work is done. */
  private dropIfEmpty(client: Client<F>, group: Group<F>): void {
    if (group.id < 0 && !group.current && group.queued.length === 0) client.groups.delete(group.id);
  }
}

function positive(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : fallback;
}

function sendable<F>(g: Group<F>): boolean {
  return g.current ? !g.current.busy : g.queued.length > 0;
}

/** Smooth weighted round-robin (as nginx does): each pick adds weights, takes the largest credit. */
function pickWeighted<T extends { weight: number; credit: number }>(candidates: T[]): T {
  let total = 0;
  let best: T | undefined;
  for (const c of candidates) {
    c.credit += c.weight;
    total += c.weight;
    if (!best || c.credit > best.credit) best = c;
  }
  best!.credit -= total;
  return best!;
}

/** Outward from the focus: distance first, the frame after before the frame before; then arrival. */
function sortByFocus<F>(group: Group<F>): void {
  const focus = group.focus;
  if (focus === undefined) {
    group.queued.sort((a, b) => a.seq - b.seq);
    return;
  }
  const rank = (i: Item<F>) => (i.position === focus ? 0 : i.position > focus ? (i.position - focus) * 2 - 1 : (focus - i.position) * 2);
  group.queued.sort((a, b) => rank(a) - rank(b) || a.seq - b.seq);
}
