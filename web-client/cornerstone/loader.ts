// A Cornerstone3D image loader and metadata provider for dicomstream: `dicomstream:` imageIds are
// fetched over the client's WebSocket (at the priority of Cornerstone's request type, cancelled on
// the server when Cornerstone cancels), decoded by dicomstream's own decoders, and handed to
// Cornerstone as its DICOM image loader would build them (modality LUT applied, same array types).
// Cornerstone itself is the caller's: passed in, never bundled.
import type * as Core from '@cornerstonejs/core';
import type { DicomStreamClient } from '../client.js';
import type { ConnectOptions } from '../client.js';
import type { DecodedFrame, DecodeInstance, Rescale, RescaledFrame } from '../decode/index.js';
import type { ImageAttributes, StudySummary } from '../../shared/protocol.js';
import { CodedError } from '../../shared/coded-error.js';
import { ErrorCode, ProtocolError } from '../../shared/protocol.js';
import { imageIdOf, parseImageId, SCHEME } from './image-id.js';
import { frameInstance, metadataModule, rescaleOf, spacingOf, windowOf, type ImageRecord } from './metadata.js';
import { rescale } from '../decode/rescale.js';
import { rescalable } from '../decode/decode-frame.js';
import { cornerstoneColour } from './colour.js';
import { suvFactorsOf, type SuvFactors } from './suv.js';
import { minMax } from '../decode/pixels.js';

/** What of @cornerstonejs/core this uses: the app's own copy of it. */
export type CornerstoneCore = Pick<typeof Core, 'imageLoader' | 'metaData' | 'utilities' | 'eventTarget' | 'Enums'>;

export interface DicomStreamCornerstoneOptions extends Omit<ConnectOptions, 'token'> {
  /** The server's WebSocket URL (ws:// or wss://). */
  url: string;
  /** A bearer token or JWT, when the server asks for one. */
  token?: string;
  /** Metadata provider priority (Cornerstone's: higher is asked first). Default 10000. */
  metadataPriority?: number;
}

/** What registerDicomStream gives back. */
export interface DicomStreamCornerstone {
  readonly client: DicomStreamClient;
  /** The series' imageIds in the server's order (along the slice normal, else by instance number), a frame each. */
  imageIdsForSeries(seriesInstanceUid: string): Promise<string[]>;
  /** The image loader registered for `dicomstream:` (what Cornerstone calls): `{ promise, cancelFn, decache }`. */
  loadImage(imageId: string, options?: Record<string, unknown>): Core.Types.IImageLoadObject & { cancel?: () => void };
  /** Removes the metadata provider and closes the connection. */
  close(): void;
}

/** Server priority of each of Cornerstone's request types: what the user looks at first. */
const PRIORITY: Record<string, number> = { interaction: 30, thumbnail: 20, prefetch: 10, compute: 0 };

export interface LoaderDependencies {
  connect: (url: string, options: ConnectOptions) => Promise<DicomStreamClient>;
  /**
   * Decodes a frame: in browsers in a worker, handed the bytes (`transfer`), `priority` ordering
   * the decodes waiting for one, `rescale` applied there; Node decodes in place.
   */
  decode: (bytes: Uint8Array, instance: DecodeInstance, options: LoaderDecodeOptions) => Promise<DecodedFrame | RescaledFrame>;
  /** Starts decoding's workers (`workers` of them) with these syntaxes' codecs, ahead of the first frame. */
  prepare: (transferSyntaxUids: string[], workers: number) => void;
}

export interface LoaderDecodeOptions { bitOffset?: number; priority?: number; transfer?: boolean; rescale?: Rescale; consume?: boolean }

export async function registerWith(cornerstone: CornerstoneCore, options: DicomStreamCornerstoneOptions, deps: LoaderDependencies): Promise<DicomStreamCornerstone> {
  const { url, metadataPriority = 10000, ...connectOptions } = options;
  // A decode worker starts while the connection opens: the first image does not wait for it.
  deps.prepare([], 1);
  const client = await deps.connect(url, connectOptions);
  const records = new Map<string, ImageRecord>();
  const studies = new Map<string, StudySummary>();

  const provider = (type: string, imageId: unknown): unknown => {
    const record = typeof imageId === 'string' ? records.get(imageId) : undefined;
    return record ? metadataModule(type, record) : undefined;
  };
  cornerstone.metaData.addProvider(provider, metadataPriority);

  // One frame group per series and request type: the type sets the group's priority, and the
  // image a viewport shows sets the focus of all of its series' groups, so that scrolling
  // reorders what the server still has to send (outward from the image on screen).
  const groups = new Map<string, Map<string, number>>();
  const groupFor = (seriesInstanceUid: string, requestType: string): number => {
    let byType = groups.get(seriesInstanceUid);
    if (!byType) groups.set(seriesInstanceUid, byType = new Map());
    let group = byType.get(requestType);
    if (group === undefined) byType.set(requestType, group = client.newGroup({ priority: PRIORITY[requestType] ?? 0, focus: focus.get(seriesInstanceUid) ?? 0 }));
    return group;
  };
  const focus = new Map<string, number>();
  const onNewImage = (event: Event): void => {
    const imageId = (event as CustomEvent<{ imageId?: string }>).detail?.imageId;
    const record = imageId === undefined ? undefined : records.get(imageId);
    if (!record) return;
    const seriesUid = record.series.seriesInstanceUid;
    if (focus.get(seriesUid) === record.position) return;
    focus.set(seriesUid, record.position);
    for (const group of groups.get(seriesUid)?.values() ?? []) client.updateGroup(group, { focus: record.position });
  };
  // PRE_STACK_NEW_IMAGE comes as the viewport starts loading the image it will show (when the user
  // scrolls to it), STACK_NEW_IMAGE once it shows it: the first moves the focus before the image is in.
  const { ELEMENT_ENABLED, ELEMENT_DISABLED, STACK_NEW_IMAGE, PRE_STACK_NEW_IMAGE } = cornerstone.Enums.Events;
  const imageEvents = PRE_STACK_NEW_IMAGE ? [PRE_STACK_NEW_IMAGE, STACK_NEW_IMAGE] : [STACK_NEW_IMAGE];
  const watched = new Set<EventTarget>();
  const onEnabled = (event: Event): void => {
    const element = (event as CustomEvent<{ element?: EventTarget }>).detail?.element;
    if (!element || watched.has(element)) return;
    watched.add(element);
    for (const type of imageEvents) element.addEventListener(type, onNewImage);
  };
  const onDisabled = (event: Event): void => {
    const element = (event as CustomEvent<{ element?: EventTarget }>).detail?.element;
    if (!element || !watched.delete(element)) return;
    for (const type of imageEvents) element.removeEventListener(type, onNewImage);
  };
  cornerstone.eventTarget.addEventListener(ELEMENT_ENABLED, onEnabled);
  cornerstone.eventTarget.addEventListener(ELEMENT_DISABLED, onDisabled);

  const loadImage = (imageId: string, loadOptions: Record<string, unknown> = {}): Core.Types.IImageLoadObject & { cancel?: () => void } => {
    const id = parseImageId(imageId);
    const requestType = typeof loadOptions.requestType === 'string' ? loadOptions.requestType : 'interaction';
    if (!id) return { promise: Promise.reject(new CodedError('NOT_A_DICOMSTREAM_IMAGE_ID', `not a dicomstream imageId: ${imageId}`)) } as Core.Types.IImageLoadObject;
    const record = records.get(imageId);
    const stream = record
      ? client.requestFrames([{ sopInstanceUid: id.sopInstanceUid, frameNumber: id.frameNumber, position: record.position }], { group: groupFor(id.seriesInstanceUid, requestType) })
      : client.requestFrames([{ sopInstanceUid: id.sopInstanceUid, frameNumber: id.frameNumber }], { priority: PRIORITY[requestType] ?? 0 });
    let cancelled = false;
    const promise = (async (): Promise<Core.Types.IImage> => {
      let frame;
      for await (const f of stream) frame = f;
      const summary = await stream.done;
      if (cancelled) throw new CodedError('LOAD_CANCELLED', `${imageId}: cancelled`);
      if (!frame) throw summary.errors[0] ?? new ProtocolError(ErrorCode.INTERNAL, `${imageId}: the frame did not arrive`);
      const known = records.get(imageId);
      const instance = known?.instance ?? (frame.instance && frameInstance(frame.instance, id.frameNumber));
      if (!instance) throw new ProtocolError(ErrorCode.INTERNAL, `${imageId}: no attributes for the instance`);
      // Grey frames come back prescaled from the decode worker: the page's main thread only wraps them.
      const grey = rescalable(instance);
      const { slope, intercept } = rescaleOf(instance);
      const decoded = await deps.decode(frame.bytes, instance, {
        bitOffset: frame.bitOffset, priority: PRIORITY[requestType] ?? 0, transfer: true, consume: true,
        ...(grey ? { rescale: { slope, intercept, ...(known?.suv ? { factor: known.suv.suvbw } : {}) } } : {}),
      });
      return cornerstoneImage(cornerstone, imageId, instance, decoded, known?.suv);
    })();
    const cancel = (): void => {
      if (cancelled) return;
      cancelled = true;
      void stream.cancel();
    };
    return { promise, cancelFn: cancel, cancel, decache: cancel };
  };
  cornerstone.imageLoader.registerImageLoader(SCHEME, loadImage as unknown as Core.Types.ImageLoaderFn);

  return {
    client,
    loadImage,
    async imageIdsForSeries(seriesInstanceUid) {
      const series = await client.openSeries(seriesInstanceUid);
      if (series.study) studies.set(series.studyInstanceUid, series.study);
      // A server before the manifest carried its study: list them.
      else if (!studies.has(series.studyInstanceUid)) for (const s of await client.listStudies()) studies.set(s.studyInstanceUid, s);
      const study = studies.get(series.studyInstanceUid);
      // The series' codecs load while the app sets its viewport up.
      deps.prepare([...new Set(series.instances.map((i) => i.transferSyntaxUid))], 1);
      const suv = await suvFactorsOf(series.modality, series.instances);
      const ids: string[] = [];
      for (const instance of series.instances) {
        for (let frameNumber = 1; frameNumber <= Math.max(1, instance.numberOfFrames); frameNumber++) {
          const imageId = imageIdOf({ studyInstanceUid: series.studyInstanceUid, seriesInstanceUid, sopInstanceUid: instance.sopInstanceUid, frameNumber });
          records.set(imageId, { instance: frameInstance(instance, frameNumber), frameNumber, series, study, position: ids.length, suv: suv.get(instance.sopInstanceUid) });
          ids.push(imageId);
        }
      }
      return ids;
    },
    close() {
      cornerstone.metaData.removeProvider(provider);
      cornerstone.eventTarget.removeEventListener(ELEMENT_ENABLED, onEnabled);
      cornerstone.eventTarget.removeEventListener(ELEMENT_DISABLED, onDisabled);
      for (const element of watched) for (const type of imageEvents) element.removeEventListener(type, onNewImage);
      watched.clear();
      client.close();
    },
  };
}

/**
 * The frame as Cornerstone's DICOM image loader makes an IImage of it; `instance` with the frame's
 * own values (frameInstance); `suv`, a PT image's scalingModule: its values are then SUVbw.
 */
export function cornerstoneImage(cornerstone: CornerstoneCore, imageId: string, instance: ImageAttributes, decoded: DecodedFrame | RescaledFrame, suv?: SuvFactors): Core.Types.IImage {
  const photometric = decoded.colourSpace ?? instance.photometricInterpretation;
  const color = (instance.samplesPerPixel || 1) > 1 || photometric === 'PALETTE COLOR';
  const { slope, intercept } = color ? { slope: 1, intercept: 0 } : rescaleOf(instance);
  const suvbw = color ? undefined : suv?.suvbw;
  const factor = suvbw === undefined ? {} : { factor: suvbw };
  let values;
  if ('scaled' in decoded) values = decoded;
  else if (color) {
    const rgb = cornerstoneColour(decoded.pixels, photometric, instance);
    values = { pixels: rgb, ...minMax(rgb), scaled: false };
  } else {
    // 1-bit frames (segmentations, overlays) come decoded as packed bits: Cornerstone wants a byte a pixel.
    const stored = instance.bitsAllocated === 1 ? unpackBits(decoded.pixels, instance.rows * instance.columns) : decoded.pixels;
    values = rescale(stored, { slope, intercept, ...factor });
  }
  const { pixels, min, max, scaled } = values;
  // Colour images get the loader's fixed 8-bit window.
  const window = color ? { center: 128, width: 256 } : windowOf(instance, min, max);
  const spacing = spacingOf(instance);
  const numberOfComponents = color ? 3 : 1;
  const voxelManager = cornerstone.utilities.VoxelManager.createImageVoxelManager({ width: instance.columns, height: instance.rows, scalarData: pixels, numberOfComponents });
  return {
    imageId,
    minPixelValue: min,
    maxPixelValue: max,
    slope,
    intercept,
    windowCenter: window.center,
    windowWidth: window.width,
    voiLUTFunction: (instance.voiLutFunction || undefined) as Core.Enums.VOILUTFunctionType | undefined,
    getPixelData: () => pixels,
    getCanvas: () => { throw new CodedError('NOT_FOR_CORNERSTONE', 'dicomstream images have no canvas of their own: render them with a viewport'); },
    rows: instance.rows,
    columns: instance.columns,
    height: instance.rows,
    width: instance.columns,
    color,
    rgba: color ? undefined : false,
    numberOfComponents,
    columnPixelSpacing: spacing.column ?? 1,
    rowPixelSpacing: spacing.row ?? 1,
    sliceThickness: instance.sliceThickness || undefined,
    invert: instance.photometricInterpretation === 'MONOCHROME1',
    photometricInterpretation: color ? 'RGB' : photometric,
    sizeInBytes: pixels.byteLength,
    dataType: pixels.constructor.name as Core.Types.PixelDataTypedArrayString,
    preScale: {
      enabled: true, scaled,
      scalingParameters: { rescaleSlope: slope, rescaleIntercept: intercept, ...(suvbw !== undefined ? { modality: 'PT', ...suv } : {}) },
    },
    isPreScaled: scaled,
    voxelManager,
  } as Core.Types.IImage;
}

/** Bits packed LSB first, as 0 and 1 a byte each. */
function unpackBits(packed: ArrayLike<number>, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (packed[i >> 3]! >> (i & 7)) & 1;
  return out;
}
