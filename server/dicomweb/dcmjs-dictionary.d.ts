// dcmjs ships no types for its `dcmjs/dictionary` export (a plain object of PS3.6 entries).
declare module 'dcmjs/dictionary' {
  export const dictionary: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
  export default dictionary;
}
