// The encoders of the @cornerstonejs codec packages' full builds, as the sample uses them.
interface EncoderFrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean; isUsingColorTransform?: boolean }
interface EmscriptenEncoder {
  getDecodedBuffer(frameInfo: EncoderFrameInfo): Uint8Array;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
}
interface EncoderModuleOptions { print?: (s: string) => void; printErr?: (s: string) => void }

declare module '@cornerstonejs/codec-charls/wasmjs' {
  const factory: (options?: EncoderModuleOptions) => Promise<{ JpegLSEncoder: new () => EmscriptenEncoder }>;
  export default factory;
}

declare module '@cornerstonejs/codec-openjpeg/wasmjs' {
  const factory: (options?: EncoderModuleOptions) => Promise<{
    J2KEncoder: new () => EmscriptenEncoder & { setQuality(lossless: boolean, quality: number): void; setDecompositions(n: number): void };
  }>;
  export default factory;
}
