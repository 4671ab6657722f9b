// dicomstream/cornerstone in browsers: the loader with dicomstream's decode workers.
import { connect, decodeFrame, prepareDecoders } from '../browser.js';
import { registerWith, type CornerstoneCore, type DicomStreamCornerstone, type DicomStreamCornerstoneOptions } from './loader.js';

export { imageIdOf, parseImageId, SCHEME, type FrameId } from './image-id.js';
export { cornerstoneImage, type CornerstoneCore, type DicomStreamCornerstone, type DicomStreamCornerstoneOptions } from './loader.js';

/**
 * Connects to a dicomstream server and registers, on the app's own @cornerstonejs/core, an image
 * loader for `dicomstream:` imageIds and a metadata provider for them.
 */
export function registerDicomStream(cornerstone: CornerstoneCore, options: DicomStreamCornerstoneOptions): Promise<DicomStreamCornerstone> {
  return registerWith(cornerstone, options, { connect, decode: decodeFrame, prepare: prepareDecoders });
}
