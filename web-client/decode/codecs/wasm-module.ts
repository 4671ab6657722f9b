// Starting an Emscripten-built codec (the @cornerstonejs/codec-* packages): once per codec and
// thread. In browsers its .wasm is fetched from `codecs/` beside the bundle (the build copies it
// there and the server serves it); in Node the glue reads it from its own package. Each codec
// names its .wasm in a literal `new URL('./codecs/….wasm', import.meta.url)`, the form Vite and
// webpack follow, so that an app bundling the client ships the files and finds them.

export interface EmscriptenOptions {
  locateFile?: (file: string, scriptDirectory: string) => string;
  print?: (text: string) => void;
  printErr?: (text: string) => void;
}
export type EmscriptenFactory<M> = (options?: EmscriptenOptions) => Promise<M>;

const inNode = typeof process !== 'undefined' && typeof process.versions === 'object' && Boolean(process.versions.node);

const started = new Map<unknown, Promise<unknown>>();

/**
 * The codec module, started on first use; a failed start is tried again next time. `wasmUrl`
 * gives the browser URL of its .wasm (not called in Node).
 */
export function startCodec<M>(factory: EmscriptenFactory<M>, wasmUrl: () => URL): Promise<M> {
  let module = started.get(factory) as Promise<M> | undefined;
  if (!module) {
    const options: EmscriptenOptions = {
      // Codecs print diagnostics on stdout/stderr; errors reach us as exceptions or return codes.
      print: () => undefined,
      printErr: () => undefined,
      ...(inNode ? {} : { locateFile: () => wasmUrl().href }),
    };
    module = factory(options);
    started.set(factory, module);
    module.catch(() => started.delete(factory));
  }
  return module;
}
