// The demo viewer: a study list, a stack viewport with overlay, scroll, window/level, zoom/pan,
// cine and a progress bar. It uses only the public client API (dicomstream/client).
import {
  connect, decodeFrame, prepareDecoders, FrameCanvas, SeriesLoader, initialWindow, isGrey, transferSyntax,
  type DicomStreamClient, type ImageAttributes, type PixelArray, type SeriesManifest, type StudySummary, type Window,
} from '../web-client/browser.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const stage = $<HTMLElement>('stage');
const canvasEl = $<HTMLCanvasElement>('image');
const canvas = new FrameCanvas(canvasEl);
const slider = $<HTMLInputElement>('slice');
const presetSelect = $<HTMLSelectElement>('preset');
const progress = $<HTMLProgressElement>('progress');
const progressText = $<HTMLElement>('progress-text');
const status = $<HTMLElement>('status');
const playButton = $<HTMLButtonElement>('play');
const fpsSelect = $<HTMLSelectElement>('fps');

interface Decoded { pixels: PixelArray; instance: ImageAttributes; colourSpace?: string }

const state = {
  client: undefined as DicomStreamClient | undefined,
  studies: [] as StudySummary[],
  study: undefined as StudySummary | undefined,
  series: undefined as SeriesManifest | undefined,
  loader: undefined as SeriesLoader | undefined,
  index: 0,
  shown: -1,
  window: undefined as Window | undefined,
  invert: false,
  zoom: 1,
  panX: 0,
  panY: 0,
  cine: undefined as ReturnType<typeof setInterval> | undefined,
  renderMs: 0,
  token: 0,
  prefetching: false,
  /** The message shown instead of an image that cannot be shown. */
  message: undefined as string | undefined,
};
/** Decoded frames of the open series, most recent last (a small LRU: scrolling back is instant). */
const decodedCache = new Map<number, Decoded>();
const DECODED_KEEP = 64;

// ---------------------------------------------------------------- study list

async function start(): Promise<void> {
  prepareDecoders();
  // The stream is at the page's own path (the server's root, or the base path it is mounted on).
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${location.pathname.replace(/[^/]*$/, '')}`;
  // A server that asks for a token: from the page's #token=… (never sent in requests or logs), else asked for once.
  const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('dicomstream-token') ?? undefined;
  try {
    state.client = await connect(url, { token });
  } catch (e) {
    if ((e as { code?: string }).code !== 'UNAUTHENTICATED') throw e;
    const typed = prompt('This server asks for an access token:') ?? '';
    sessionStorage.setItem('dicomstream-token', typed);
    state.client = await connect(url, { token: typed });
  }
  state.client.onSeriesUpdated((update) => void seriesChanged(update.seriesInstanceUid, update.removed));
  state.studies = await state.client.listStudies();
  renderStudyList();
  const wanted = new URLSearchParams(location.search).get('series');
  const first = state.studies.flatMap((s) => s.series).find((s) => s.seriesInstanceUid === wanted) ?? state.studies[0]?.series[0];
  if (first) await openSeries(first.seriesInstanceUid);
  else status.textContent = 'The server has no images.';
}

/** Files of an open series changed on the server: refresh the list, and reopen the series. */
async function seriesChanged(uid: string, removed: boolean): Promise<void> {
  state.studies = await state.client!.listStudies();
  renderStudyList();
  const current = state.series?.seriesInstanceUid;
  for (const b of document.querySelectorAll<HTMLButtonElement>('.series')) b.classList.toggle('active', b.dataset.uid === current);
  if (uid !== current) return;
  if (removed) {
    stopCine();
    state.loader?.close();
    status.textContent = 'This series was removed from the server.';
    return;
  }
  await openSeries(uid);
  status.textContent = 'This series changed on the server and was reloaded.';
}

function renderStudyList(): void {
  const list = $<HTMLElement>('study-list');
  list.textContent = '';
  for (const study of state.studies) {
    const box = document.createElement('div');
    box.className = 'study';
    const title = document.createElement('div');
    title.className = 'study-title';
    title.textContent = personName(study.patientName) || '(no name)';
    const meta = document.createElement('div');
    meta.className = 'study-meta';
    meta.textContent = [formatDate(study.studyDate), study.studyDescription, study.modalities.join('/')].filter(Boolean).join(' · ');
    box.append(title, meta);
    for (const s of study.series) {
      const b = document.createElement('button');
      b.className = 'series';
      b.dataset.uid = s.seriesInstanceUid;
      b.innerHTML = '';
      b.append(`${s.modality || '??'} ${s.seriesNumber ? '#' + s.seriesNumber + ' ' : ''}${s.seriesDescription || ''}`);
      const small = document.createElement('small');
      small.textContent = ` ${s.numberOfFrames} image${s.numberOfFrames === 1 ? '' : 's'}`;
      b.append(small);
      b.onclick = () => void openSeries(s.seriesInstanceUid);
      box.append(b);
    }
    list.append(box);
  }
}

// ---------------------------------------------------------------- opening a series

async function openSeries(uid: string): Promise<void> {
  const client = state.client!;
  stopCine();
  state.loader?.close();
  decodedCache.clear();
  const series = await client.openSeries(uid);
  state.series = series;
  state.study = state.studies.find((s) => s.series.some((x) => x.seriesInstanceUid === uid));
  for (const b of document.querySelectorAll<HTMLButtonElement>('.series')) b.classList.toggle('active', b.dataset.uid === uid);
  history.replaceState(null, '', `?series=${encodeURIComponent(uid)}`);
  const loader = new SeriesLoader(client, series, {
    // The frame on screen is decoded as it arrives; until that decode is done it counts in the
    // client's backlog, so a slow decoder holds the server back (flow control).
    onFrame: (ref) => (ref.index === state.index ? show(state.index) : undefined),
    onProgress: (loaded, total) => updateProgress(loaded, total),
  });
  state.loader = loader;
  // Open in the middle of the stack, where a volume usually has the most to see.
  state.index = Math.floor((loader.total - 1) / 2);
  state.window = undefined;
  state.shown = -1;
  state.zoom = 1; state.panX = 0; state.panY = 0;
  slider.max = String(loader.total - 1);
  slider.value = String(state.index);
  updateProgress(0, loader.total);
  // The frame on screen alone first; the rest streams once it has painted (see show()).
  loader.start(state.index, { prefetch: false });
  state.prefetching = false;
  fillPresets(series.instances[0]);
  layout();
  overlay();
}

function updateProgress(loaded: number, total: number): void {
  progress.max = total;
  progress.value = loaded;
  progressText.textContent = `${loaded}/${total}`;
  document.body.dataset.loaded = String(loaded);
  document.body.dataset.total = String(total);
}

// ---------------------------------------------------------------- showing a frame

function go(index: number): void {
  const loader = state.loader;
  if (!loader) return;
  const i = Math.max(0, Math.min(loader.total - 1, index));
  if (i === state.index) return;
  state.index = i;
  slider.value = String(i);
  document.body.dataset.frameIndex = String(i);
  loader.setFocus(i);
  void show(i);
}

async function decoded(index: number): Promise<Decoded | undefined> {
  const hit = decodedCache.get(index);
  if (hit) {
    decodedCache.delete(index);
    decodedCache.set(index, hit);
    return hit;
  }
  const frame = state.loader?.frame(index);
  const ref = state.loader?.frames[index];
  if (!frame || !ref) return undefined;
  const { pixels, colourSpace } = await decodeFrame(frame.bytes, ref.instance, { bitOffset: frame.bitOffset });
  const d: Decoded = colourSpace ? { pixels, instance: ref.instance, colourSpace } : { pixels, instance: ref.instance };
  decodedCache.set(index, d);
  if (decodedCache.size > DECODED_KEEP) decodedCache.delete(decodedCache.keys().next().value!);
  return d;
}

async function show(index: number): Promise<void> {
  const token = ++state.token;
  let d: Decoded | undefined;
  try {
    d = await decoded(index);
  } catch (e) {
    if (token !== state.token) return;
    const text = `Cannot show this image: ${(e as Error).message}`;
    state.message = text;
    drawMessage();
    document.body.dataset.message = text;
    startPrefetch();
    state.shown = index;
    layout();
    overlay();
    return;
  }
  if (token !== state.token || index !== state.index) return; // a newer frame was asked for meanwhile
  if (!d) { overlay(); return; }
  state.message = undefined;
  draw(d);
  delete document.body.dataset.message;
  if (state.shown < 0) performance.mark('dicomstream:first-image');
  startPrefetch();
  state.shown = index;
  document.body.dataset.shown = String(index);
  overlay();
}

/** Streams the rest of the series once the first image has reached the screen (it then has the thread to itself). */
function startPrefetch(): void {
  if (state.prefetching) return;
  state.prefetching = true;
  const loader = state.loader;
  requestAnimationFrame(() => setTimeout(() => { if (loader === state.loader) loader?.prefetch(); }, 50));
}

function draw(d: Decoded): void {
  if (!state.window && isGrey(d.instance.photometricInterpretation)) state.window = initialWindow(d.pixels, d.instance);
  state.renderMs = canvas.draw(d.pixels, d.instance, { window: state.window, invert: state.invert, ...(d.colourSpace ? { colourSpace: d.colourSpace } : {}) });
  document.body.dataset.windowCenter = String(state.window?.center ?? '');
  document.body.dataset.windowWidth = String(state.window?.width ?? '');
  document.body.dataset.renders = String(Number(document.body.dataset.renders ?? 0) + 1);
  layout();
}

function redraw(): void {
  const d = decodedCache.get(state.shown);
  if (d) draw(d);
  overlay();
}

// ---------------------------------------------------------------- window presets

function fillPresets(instance: ImageAttributes | undefined): void {
  presetSelect.textContent = '';
  const seen = new Set<string>();
  const add = (label: string, w?: Window) => {
    const value = w ? `${w.center}/${w.width}` : '';
    if (seen.has(value)) return; // the file's own preset may already be one of the CT ones
    seen.add(value);
    const o = document.createElement('option');
    o.textContent = label;
    o.value = value;
    presetSelect.append(o);
  };
  add('Default');
  if (instance) {
    instance.windowCenter.forEach((c, i) => {
      const w = instance.windowWidth[i];
      if (w !== undefined) add(`${instance.windowExplanation[i] || 'File ' + (i + 1)} (${c}/${w})`, { center: c, width: w });
    });
    if (state.series?.modality === 'CT') {
      for (const [name, c, w] of [['Brain', 40, 80], ['Soft tissue', 40, 400], ['Lung', -600, 1500], ['Bone', 400, 1800]] as const) add(`${name} (${c}/${w})`, { center: c, width: w });
    }
  }
}

presetSelect.onchange = () => {
  const [c, w] = presetSelect.value.split('/').map(Number);
  state.window = presetSelect.value ? { center: c!, width: w! } : undefined;
  const d = decodedCache.get(state.shown);
  if (!state.window && d) state.window = initialWindow(d.pixels, d.instance);
  redraw();
};

// ---------------------------------------------------------------- overlay and layout

function overlay(): void {
  const study = state.study;
  const series = state.series;
  const loader = state.loader;
  const ref = loader?.frames[state.index];
  $('tl').textContent = study ? [personName(study.patientName), study.patientId, study.studyDescription, formatDate(study.studyDate)].filter(Boolean).join('\n') : '';
  $('tr').textContent = series && loader ? [`${series.modality} ${series.seriesDescription}`.trim(), `Im ${state.index + 1}/${loader.total}`,
    ref && ref.instance.numberOfFrames > 1 ? `frame ${ref.frameNumber}/${ref.instance.numberOfFrames}` : `#${ref?.instance.instanceNumber ?? ''}`].join('\n') : '';
  const w = state.window;
  $('bl').textContent = [w ? `W ${round(w.width)}  L ${round(w.center)}` : '', `zoom ${Math.round(fitScale() * state.zoom * 100)}%`].join('\n');
  const loading = ref && !loader?.frame(state.index) ? 'loading…\n' : '';
  $('br').textContent = ref ? `${loading}${ref.instance.columns}×${ref.instance.rows}  ${transferSyntax(ref.instance.transferSyntaxUid)?.name ?? ref.instance.transferSyntaxUid}\nrender ${state.renderMs.toFixed(1)} ms` : '';
}

/**
 * The message on a canvas the size of the viewport, its text at 16 px on screen whatever the
 * image's shape (a tall, narrow image leaves no room within its own outline) and the zoom.
 */
function drawMessage(): void {
  if (state.message === undefined) return;
  const r = stage.getBoundingClientRect();
  canvas.message(state.message, Math.max(256, Math.round(r.width)), Math.max(256, Math.round(r.height)), 16 / state.zoom);
}

function fitScale(): number {
  const r = stage.getBoundingClientRect();
  return Math.min(r.width / canvasEl.width, r.height / canvasEl.height) || 1;
}

function layout(): void {
  const r = stage.getBoundingClientRect();
  const s = fitScale() * state.zoom;
  const x = (r.width - canvasEl.width * s) / 2 + state.panX;
  const y = (r.height - canvasEl.height * s) / 2 + state.panY;
  canvasEl.style.transform = `translate(${x}px, ${y}px) scale(${s})`;
}

// ---------------------------------------------------------------- interaction

stage.addEventListener('wheel', (e) => {
  e.preventDefault();
  if (e.ctrlKey) { zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1); return; }
  go(state.index + Math.sign(e.deltaY));
}, { passive: false });

function zoomBy(f: number): void {
  state.zoom = Math.max(0.1, Math.min(20, state.zoom * f));
  drawMessage();
  layout();
  overlay();
}

window.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLSelectElement || e.target instanceof HTMLInputElement && e.target.type !== 'range') return;
  const step: Record<string, number> = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
  if (e.key in step) { e.preventDefault(); go(state.index + step[e.key]!); }
  else if (e.key === 'Home') go(0);
  else if (e.key === 'End') go((state.loader?.total ?? 1) - 1);
  else if (e.key === ' ') { e.preventDefault(); toggleCine(); }
  else if (e.key === 'r') reset();
  else if (e.key === 'i') { state.invert = !state.invert; redraw(); }
  else if (e.key === '+' || e.key === '=') zoomBy(1.25);
  else if (e.key === '-') zoomBy(0.8);
});

slider.addEventListener('input', () => go(Number(slider.value)));

stage.addEventListener('contextmenu', (e) => e.preventDefault());
stage.addEventListener('pointerdown', (e) => {
  stage.focus();
  stage.setPointerCapture(e.pointerId);
  const mode = e.button === 2 || e.shiftKey ? 'pan' : e.button === 1 ? 'zoom' : 'window';
  let lastX = e.clientX;
  let lastY = e.clientY;
  const move = (m: PointerEvent) => {
    const dx = m.clientX - lastX;
    const dy = m.clientY - lastY;
    lastX = m.clientX; lastY = m.clientY;
    if (mode === 'pan') { state.panX += dx; state.panY += dy; layout(); }
    else if (mode === 'zoom') zoomBy(Math.exp(-dy / 200));
    else if (state.window) {
      // Drag right widens the window, drag down raises the level; faster for wide windows.
      const k = Math.max(0.5, state.window.width / 256);
      state.window = { center: state.window.center + dy * k, width: Math.max(1, state.window.width + dx * k) };
      presetSelect.value = '';
      redraw();
    }
  };
  const up = () => { stage.removeEventListener('pointermove', move); stage.removeEventListener('pointerup', up); };
  stage.addEventListener('pointermove', move);
  stage.addEventListener('pointerup', up);
});

function reset(): void {
  state.zoom = 1; state.panX = 0; state.panY = 0; state.invert = false;
  drawMessage();
  state.window = undefined;
  presetSelect.value = '';
  const d = decodedCache.get(state.shown);
  if (d && isGrey(d.instance.photometricInterpretation)) state.window = initialWindow(d.pixels, d.instance);
  redraw();
}
$<HTMLButtonElement>('reset').onclick = reset;

function toggleCine(): void {
  if (state.cine) { stopCine(); return; }
  const fps = Number(fpsSelect.value) || 20;
  playButton.textContent = '❚❚ Stop';
  state.cine = setInterval(() => {
    const total = state.loader?.total ?? 1;
    go((state.index + 1) % total);
  }, 1000 / fps);
}
function stopCine(): void {
  clearInterval(state.cine);
  state.cine = undefined;
  playButton.textContent = '▶ Play';
}
playButton.onclick = toggleCine;
fpsSelect.onchange = () => { if (state.cine) { stopCine(); toggleCine(); } };
window.addEventListener('resize', () => { drawMessage(); layout(); overlay(); });

// ---------------------------------------------------------------- helpers

function personName(pn: string): string {
  return pn.split('=')[0]!.split('^').filter(Boolean).join(' ');
}
function formatDate(da: string): string {
  return /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}` : da;
}
function round(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/** For tests and the console: the viewer's state and a few actions. */
(window as unknown as { viewer: unknown }).viewer = {
  state, go, show, openSeries,
  setWindow(center: number, width: number) { state.window = { center, width }; redraw(); },
};

start().catch((e: unknown) => {
  status.textContent = `Error: ${(e as Error).message}`;
  canvas.message(`Cannot reach the server: ${(e as Error).message}`);
});
