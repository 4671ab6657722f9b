// Where each frame's bytes lie: native frames are one range each; an encapsulated frame is the
// list of its fragments' value ranges, found from the Extended or Basic Offset Table when they are
// valid, else one fragment per frame, all fragments for one frame, or codestream start markers.
import type { ImageAttributes } from '../../shared/protocol.js';
import { IndexError } from './index-error.js';

/** A frame's bytes: `segments` is [offset, length, offset, length, …] in the frame's source. */
export interface FrameLocation {
  segments: number[];
  length: number;
  /** Bits Allocated 1: the bit in the first byte where the frame starts. */
  bitOffset: number;
}

export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Native frames: consecutive, each the size the image module says. */
export function nativeFrames(image: ImageAttributes, valueOffset: number, valueLength: number, sourceSize: number, warnings: string[]): FrameLocation[] {
  const { rows, columns, samplesPerPixel, bitsAllocated, numberOfFrames, photometricInterpretation } = image;
  if (!rows || !columns || !bitsAllocated) throw new IndexError('NOT_AN_IMAGE', 'Pixel Data without Rows, Columns or Bits Allocated');
  // 4:2:2 native data holds two samples per pixel (Y Y Cb Cr per pixel pair).
  const samples = /_422$/.test(photometricInterpretation) ? 2 : samplesPerPixel || 1;
  const frameBits = rows * columns * samples * bitsAllocated;
  const available = Math.min(valueLength, sourceSize - valueOffset);
  const needed = Math.ceil((frameBits * numberOfFrames) / 8);
  if (available < needed) {
    throw new IndexError('TRUNCATED', `pixel data truncated: ${available} of ${needed} bytes for ${numberOfFrames} frame(s)`);
  }
  if (valueLength > needed + 1) warnings.push(`pixel data longer than ${numberOfFrames} frame(s) by ${valueLength - needed} bytes: extra bytes ignored`);
  const frames: FrameLocation[] = [];
  for (let i = 0; i < numberOfFrames; i++) {
    const startBit = i * frameBits;
    const start = Math.floor(startBit / 8);
    const end = Math.ceil((startBit + frameBits) / 8);
    frames.push({ segments: [valueOffset + start, end - start], length: end - start, bitOffset: startBit % 8 });
  }
  return frames;
}

interface Fragment {
  /** Offset of the item tag from the first item after the offset table (what offset tables count). */
  itemOffset: number;
  valueOffset: number;
  length: number;
  /** The first bytes of the value, to recognise codestream starts. */
  head: Uint8Array;
}

const ITEM = 0xe000fffe; // (FFFE,E000) read as one little-endian uint32
const SEQUENCE_DELIMITER = 0xe0ddfffe;

/** Reads the item headers of encapsulated Pixel Data without reading the fragments' contents. */
async function readFragments(source: ByteSource, valueOffset: number, warnings: string[]): Promise<{ bot: number[]; fragments: Fragment[] }> {
  const reader = new BlockReader(source);
  let pos = valueOffset;
  const header = async (at: number) => {
    const b = await reader.bytes(at, 8);
    if (b.length < 8) return undefined;
    const v = new DataView(b.buffer, b.byteOffset, 8);
    return { tag: v.getUint32(0, true), length: v.getUint32(4, true) };
  };
  const first = await header(pos);
  if (!first || first.tag !== ITEM) throw new IndexError('CORRUPT', 'encapsulated Pixel Data does not start with an offset table item');
  if (first.length === 0xffffffff || pos + 8 + first.length > source.size) throw new IndexError('CORRUPT', 'Basic Offset Table item has an impossible length');
  const botBytes = await reader.bytes(pos + 8, first.length);
  const bot: number[] = [];
  const bv = new DataView(botBytes.buffer, botBytes.byteOffset, botBytes.length);
  for (let i = 0; i + 4 <= botBytes.length; i += 4) bot.push(bv.getUint32(i, true));
  pos += 8 + first.length;
  const base = pos;
  const fragments: Fragment[] = [];
  for (;;) {
    const h = await header(pos);
    if (!h) { warnings.push('encapsulated Pixel Data ends without a sequence delimiter'); break; }
    if (h.tag === SEQUENCE_DELIMITER) break;
    if (h.tag !== ITEM) { warnings.push(`unexpected tag in encapsulated Pixel Data at byte ${pos}: fragments end there`); break; }
    if (h.length === 0xffffffff || pos + 8 + h.length > source.size) {
      throw new IndexError('TRUNCATED', `fragment ${fragments.length + 1} runs past the end of the file`);
    }
    fragments.push({ itemOffset: pos - base, valueOffset: pos + 8, length: h.length, head: await reader.bytes(pos + 8, Math.min(12, h.length)) });
    pos += 8 + h.length;
  }
  if (fragments.length === 0) throw new IndexError('CORRUPT', 'encapsulated Pixel Data has no fragments');
  return { bot, fragments };
}

function isCodestreamStart(head: Uint8Array): boolean {
  if (head[0] === 0xff && head[1] === 0xd8) return true; // JPEG, JPEG-LS (SOI)
  if (head[0] === 0xff && head[1] === 0x4f && head[2] === 0xff && head[3] === 0x51) return true; // J2K (SOC SIZ)
  // JP2 signature box
  return head[0] === 0 && head[1] === 0 && head[2] === 0 && head[3] === 0x0c && head[4] === 0x6a && head[5] === 0x50;
}

/** Groups fragments by a table of item offsets (BOT or EOT); undefined when the table does not fit. */
function byOffsetTable(offsets: number[], fragments: Fragment[], numberOfFrames: number): number[][] | undefined {
  if (offsets.length !== numberOfFrames) return undefined;
  const indexAt = new Map(fragments.map((f, i) => [f.itemOffset, i]));
  const starts = offsets.map((o) => indexAt.get(o));
  if (starts.some((s) => s === undefined) || starts[0] !== 0) return undefined;
  const groups: number[][] = [];
  for (let f = 0; f < numberOfFrames; f++) {
    const from = starts[f]!;
    const to = f + 1 < numberOfFrames ? starts[f + 1]! : fragments.length;
    if (to <= from) return undefined;
    groups.push(Array.from({ length: to - from }, (_, k) => from + k));
  }
  return groups;
}

export async function encapsulatedFrames(
  source: ByteSource, valueOffset: number, numberOfFrames: number, extendedOffsets: number[] | undefined, warnings: string[],
): Promise<FrameLocation[]> {
  const { bot, fragments } = await readFragments(source, valueOffset, warnings);
  let groups: number[][] | undefined;
  if (extendedOffsets?.length) {
    groups = byOffsetTable(extendedOffsets, fragments, numberOfFrames);
    if (!groups) warnings.push('Extended Offset Table does not fit the fragments: ignored');
  }
  if (!groups && bot.length) {
    groups = byOffsetTable(bot, fragments, numberOfFrames);
    if (!groups) warnings.push(`Basic Offset Table (${bot.length} entries for ${numberOfFrames} frames) does not fit the fragments: ignored`);
  }
  if (!groups && fragments.length === numberOfFrames) groups = fragments.map((_, i) => [i]);
  if (!groups && numberOfFrames === 1) groups = [fragments.map((_, i) => i)];
  if (!groups) {
    const starts = fragments.flatMap((f, i) => (isCodestreamStart(f.head) ? [i] : []));
    if (starts.length === numberOfFrames && starts[0] === 0) {
      groups = starts.map((s, f) => {
        const to = f + 1 < starts.length ? starts[f + 1]! : fragments.length;
        return Array.from({ length: to - s }, (_, k) => s + k);
      });
    }
  }
  if (!groups) {
    throw new IndexError('CORRUPT', `cannot tell which of ${fragments.length} fragments belong to which of ${numberOfFrames} frames`);
  }
  return groups.map((indices) => {
    const segments: number[] = [];
    let length = 0;
    for (const i of indices) {
      const f = fragments[i]!;
      segments.push(f.valueOffset, f.length);
      length += f.length;
    }
    return { segments, length, bitOffset: 0 };
  });
}

/** Reads small pieces of a file through a 64 KiB block, so walking item headers costs few reads. */
class BlockReader {
  private blockStart = -1;
  private block: Uint8Array = new Uint8Array(0);
  constructor(private readonly source: ByteSource) {}

  async bytes(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(offset + length, this.source.size);
    if (end <= offset) return new Uint8Array(0);
    if (this.blockStart < 0 || offset < this.blockStart || end > this.blockStart + this.block.length) {
      if (end - offset > 65536) return this.source.read(offset, end - offset);
      this.blockStart = offset;
      this.block = await this.source.read(offset, Math.min(65536, this.source.size - offset));
    }
    return this.block.subarray(offset - this.blockStart, end - this.blockStart);
  }
}
