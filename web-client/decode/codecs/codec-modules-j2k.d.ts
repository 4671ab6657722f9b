// Types for the Emscripten builds behind jpeg-ls.ts, jpeg2000.ts and htj2k.ts (the packages ship
// none): only what those decoders (and their tests) call. Each factory takes the options object
// as its Module and resolves to the started codec. Buffers returned by get*Buffer may be views of
// the codec's memory: copy them before the next call or the instance's delete().
// (The encoder-only full builds of charls and openjpeg are declared by server/sample.)

declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number }
  class JpegLSDecoder {
    getEncodedBuffer(length: number): Uint8Array;
    /** Throws a C++ exception (a number: see getExceptionMessage) on a bad codestream. */
    decode(): void;
    getFrameInfo(): FrameInfo;
    /** 0: one scan per component (planar output), 1: line, 2: sample interleaved (interleaved output). */
    getInterleaveMode(): number;
    getNearLossless(): number;
    getDecodedBuffer(): Uint8Array | Uint8ClampedArray;
    delete(): void;
  }
  export interface CharLSModule {
    JpegLSDecoder: typeof JpegLSDecoder;
    HEAPU8: Uint8Array;
    getExceptionMessage?: (exception: number) => string;
  }
  const factory: (options?: object) => Promise<CharLSModule>;
  export default factory;
}

declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean }
  class J2KDecoder {
    getEncodedBuffer(length: number): Uint8Array;
    /** Does not throw on a bad codestream: the frame info then stays 0 × 0. */
    decode(): void;
    getFrameInfo(): FrameInfo;
    getDecodedBuffer(): Uint8Array | Uint8ClampedArray;
    delete(): void;
  }
  export interface OpenJpegModule { J2KDecoder: typeof J2KDecoder; HEAPU8: Uint8Array }
  const factory: (options?: object) => Promise<OpenJpegModule>;
  export default factory;
}

declare module '@cornerstonejs/codec-openjph/wasmjs' {
  interface FrameInfo {
    width: number; height: number; bitsPerSample: number; componentCount: number;
    isSigned: boolean; isUsingColorTransform: boolean;
  }
  class HTJ2KDecoder {
    getEncodedBuffer(length: number): Uint8Array;
    /** Does not throw on a plain JPEG 2000 or bad codestream: the frame info then stays 0 × 0. */
    decode(): void;
    getFrameInfo(): FrameInfo;
    getDownSample(component: number): { x: number; y: number };
    getDecodedBuffer(): Uint8Array;
    delete(): void;
  }
  class HTJ2KEncoder {
    getDecodedBuffer(frameInfo: FrameInfo): Uint8Array;
    setQuality(lossless: boolean, quantizationStep: number): void;
    setProgressionOrder(order: number): void;
    setDecompositions(decompositions: number): void;
    encode(): void;
    getEncodedBuffer(): Uint8Array;
    delete(): void;
  }
  export interface OpenJphModule { HTJ2KDecoder: typeof HTJ2KDecoder; HTJ2KEncoder: typeof HTJ2KEncoder; HEAPU8: Uint8Array }
  const factory: (options?: object) => Promise<OpenJphModule>;
  export default factory;
}
