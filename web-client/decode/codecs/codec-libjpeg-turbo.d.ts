// Types for the decode-only WASM build of @cornerstonejs/codec-libjpeg-turbo-8bit, which ships
// none: an Emscripten factory whose module holds the embind class JPEGDecoder.
declare module '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs' {
  export interface FrameInfo {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount: number;
    isSigned: boolean;
  }

  export interface JPEGDecoder {
    /** The codec's input buffer, in WASM memory, resized to `encodedSize`: copy the codestream into it. */
    getEncodedBuffer(encodedSize: number): Uint8Array;
    /** Reads the header and decodes (libjpeg defaults: three YCbCr components come out as RGB). Throws a number on error. */
    decode(): void;
    readHeader(): void;
    getFrameInfo(): FrameInfo;
    /** The decoded samples, interleaved: a copy outside WASM memory. */
    getDecodedBuffer(): Uint8ClampedArray;
    /** Frees the C++ object. */
    delete(): void;
  }

  export interface LibJpegTurboModule {
    JPEGDecoder: new () => JPEGDecoder;
  }

  const factory: (options?: {
    locateFile?: (file: string, scriptDirectory: string) => string;
    print?: (text: string) => void;
    printErr?: (text: string) => void;
  }) => Promise<LibJpegTurboModule>;
  export default factory;
}
