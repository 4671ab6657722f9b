// The pixel content of the built-in sample, as pure functions of the frame index, so the tests can
// recompute any frame and compare it with what was written. No DICOM here: see make-sample.ts.
//
// The CT is a head-like 3D phantom in the spirit of Shepp–Logan: ellipsoids of tissue, each
// painted over the ones before it (so a value is the tissue's HU, not a sum), sliced axially, plus
// a little seeded noise. Each row of a slice meets an ellipsoid in one interval, found by solving
// a quadratic, so a slice costs a few span fills rather than a test per pixel per ellipsoid.

export const CT = {
  rows: 512,
  columns: 512,
  slices: 120,
  /** mm between pixel centres, both directions. */
  pixelSpacing: 0.7,
  sliceThickness: 1.25,
  firstZ: -75,
  /** Stored value = HU - rescale intercept. */
  rescaleIntercept: -1024,
  maxStored: 4095,
} as const;

/** Patient x (and y) of the first pixel centre: the image is centred on the z axis. */
export const CT_ORIGIN = -((CT.columns - 1) / 2) * CT.pixelSpacing;

export const ctSliceZ = (k: number): number => CT.firstZ + CT.sliceThickness * k;

interface Ellipsoid {
  /** Centre, mm (patient LPS: +x left, +y posterior, +z head). */
  x: number; y: number; z: number;
  /** Semi-axes, mm, before the rotation. */
  a: number; b: number; c: number;
  /** Rotation about z, degrees. */
  angle: number;
  hu: number;
}

const AIR = -1000;

// Outermost first: each one is painted over the ones before it.
const HEAD: readonly Ellipsoid[] = [
  { x: 0, y: 125, z: 0, a: 165, b: 6, c: 400, angle: 0, hu: -300 }, // couch top, under the head
  { x: 0, y: 0, z: -8, a: 78, b: 100, c: 98, angle: 0, hu: 30 }, // scalp
  { x: 0, y: 0, z: -8, a: 73, b: 95, c: 93, angle: 0, hu: 1000 }, // skull
  { x: 0, y: -74, z: -58, a: 16, b: 5, c: 12, angle: 0, hu: AIR }, // frontal sinus, in the bone: before the brain
  { x: 0, y: 2, z: -8, a: 67, b: 89, c: 87, angle: 0, hu: 40 }, // grey matter
  { x: 0, y: 4, z: 0, a: 54, b: 74, c: 70, angle: 0, hu: 28 }, // white matter
  { x: 0, y: 40, z: -60, a: 40, b: 22, c: 18, angle: 0, hu: 32 }, // cerebellum, low and posterior
  { x: 17, y: 4, z: 12, a: 9, b: 30, c: 24, angle: -18, hu: 6 }, // lateral ventricles
  { x: -17, y: 4, z: 12, a: 9, b: 30, c: 24, angle: 18, hu: 6 },
  { x: 0, y: 24, z: -12, a: 5, b: 8, c: 10, angle: 0, hu: 6 }, // third ventricle
  { x: -34, y: -42, z: 24, a: 7, b: 7, c: 7, angle: 0, hu: 78 }, // small bleed
  { x: 30, y: 46, z: -22, a: 12, b: 9, c: 10, angle: 30, hu: 14 }, // infarct
  { x: 8, y: 58, z: 4, a: 2.5, b: 2.5, c: 2.5, angle: 0, hu: 420 }, // calcification
  { x: -24, y: 20, z: 50, a: 5, b: 5, c: 5, angle: 0, hu: 70 }, // lesion seen only near the top
];

const NOISE_HU = 12; // peak of a triangular distribution: σ ≈ 5 HU, visible in a narrow window only

/** A small seeded PRNG (xorshift32): the same slice gets the same noise on every run and machine. */
function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** Fills each row's interval inside the ellipsoid with its HU. */
function paint(hu: Float32Array, e: Ellipsoid, z: number, rows: number, columns: number, spacing: number, origin: number): void {
  const w = (z - e.z) / e.c;
  const r2 = 1 - w * w;
  if (r2 <= 0) return;
  const cos = Math.cos((e.angle * Math.PI) / 180);
  const sin = Math.sin((e.angle * Math.PI) / 180);
  // Inside when u²/a² + v²/b² ≤ r², u = cos·dx + sin·dy, v = −sin·dx + cos·dy: a quadratic in dx.
  const ia = 1 / (e.a * e.a);
  const ib = 1 / (e.b * e.b);
  const A = cos * cos * ia + sin * sin * ib;
  const Bk = 2 * cos * sin * (ia - ib);
  const Ck = sin * sin * ia + cos * cos * ib;
  for (let row = 0; row < rows; row++) {
    const dy = origin + row * spacing - e.y;
    const B = Bk * dy;
    const C = Ck * dy * dy - r2;
    const disc = B * B - 4 * A * C;
    if (disc < 0) continue;
    const root = Math.sqrt(disc);
    const x0 = e.x + (-B - root) / (2 * A);
    const x1 = e.x + (-B + root) / (2 * A);
    const from = Math.max(0, Math.ceil((x0 - origin) / spacing));
    const to = Math.min(columns - 1, Math.floor((x1 - origin) / spacing));
    if (from <= to) hu.fill(e.hu, row * columns + from, row * columns + to + 1);
  }
}

/**
 * The stored values of CT slice `k` (0-based, z = −75 + 1.25·k mm): HU − intercept with noise,
 * clamped to the 12 stored bits. Pass `out` (and `scratch`) to reuse buffers across slices.
 */
export function ctSlice(k: number, out = new Uint16Array(CT.rows * CT.columns), scratch = new Float32Array(CT.rows * CT.columns)): Uint16Array {
  const hu = scratch;
  hu.fill(AIR);
  const z = ctSliceZ(k);
  for (const e of HEAD) paint(hu, e, z, CT.rows, CT.columns, CT.pixelSpacing, CT_ORIGIN);
  const random = xorshift32(0x5eed0000 + k * 7919);
  const offset = 0.5 - CT.rescaleIntercept; // +0.5: round to nearest by truncation (values stay positive)
  for (let i = 0; i < hu.length; i++) {
    const r = random();
    // Two 16-bit uniforms summed: triangular noise in (−1, 1).
    const noise = ((r & 0xffff) + (r >>> 16)) / 65536 - 1;
    const v = (hu[i]! + noise * NOISE_HU + offset) | 0;
    out[i] = v < 0 ? 0 : v > CT.maxStored ? CT.maxStored : v;
  }
  return out;
}

/** The cine multi-frame: a pulsing "heart" in a short-axis-like MR view. */
export const CINE = { rows: 256, columns: 256, frames: 24, bitsStored: 12 } as const;

/** Stored values of cine frame `f` (0-based): body, myocardium ring and bright blood pool, beating once per loop. */
export function cineFrame(f: number, out = new Uint16Array(CINE.rows * CINE.columns)): Uint16Array {
  const phase = (2 * Math.PI * f) / CINE.frames;
  const beat = 0.5 - 0.5 * Math.cos(phase); // 0 at end-diastole, 1 at end-systole
  const lumen = 30 - 12 * beat; // px
  const wall = 10 + 5 * beat; // the wall thickens as it contracts
  const cx = 132 + 3 * beat;
  const cy = 118;
  const random = xorshift32(0xc1e0000 + f);
  for (let row = 0; row < CINE.rows; row++) {
    for (let col = 0; col < CINE.columns; col++) {
      const bx = (col - 128) / 110;
      const by = (row - 134) / 86;
      let v = 0;
      if (bx * bx + by * by <= 1) {
        v = 350 + 60 * Math.sin(col / 9) * Math.cos(row / 13); // body: textured soft tissue
        const r = Math.hypot(col - cx, row - cy);
        if (r <= lumen) v = 1500; // blood pool
        else if (r <= lumen + wall) v = 700; // myocardium
        const lung = Math.hypot((col - 60) / 30, (row - 120) / 50);
        if (lung <= 1) v = 60; // dark lung
      }
      const noise = (random() & 0xff) / 255 - 0.5;
      out[row * CINE.columns + col] = Math.max(0, Math.min(4095, Math.round(v + noise * 40)));
    }
  }
  return out;
}

/** The RGB test card: colour bars above, a hue × brightness gradient below. Interleaved RGB. */
export const RGB = { rows: 384, columns: 512 } as const;

const BARS: readonly (readonly [number, number, number])[] = [
  [192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192], [16, 16, 16],
];

/** Hue (0..1) at full saturation, as 0..255 channels. */
function hueRgb(h: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (1 - Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

export function rgbTestPattern(): Uint8Array {
  const { rows, columns } = RGB;
  const out = new Uint8Array(rows * columns * 3);
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < columns; col++) {
      let px: readonly number[];
      if (row < rows / 2) {
        px = BARS[Math.floor((col * BARS.length) / columns)]!;
      } else if (row < (rows * 3) / 4) {
        const [r, g, b] = hueRgb(col / columns);
        const light = (row - rows / 2) / (rows / 4); // black to full colour
        px = [r * light, g * light, b * light];
      } else {
        const grey = Math.round((col / (columns - 1)) * 255); // grey ramp
        px = [grey, grey, grey];
      }
      const at = (row * columns + col) * 3;
      out[at] = px[0]!; out[at + 1] = px[1]!; out[at + 2] = px[2]!;
    }
  }
  return out;
}

/** The renderer-test images: small, with content that shows a wrong LUT at a glance. */
export const LUT_IMAGE = { rows: 256, columns: 256 } as const;

/** 8-bit palette indices: concentric rings over a horizontal ramp. */
export function paletteIndices(): Uint8Array {
  const { rows, columns } = LUT_IMAGE;
  const out = new Uint8Array(rows * columns);
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < columns; col++) {
      const r = Math.hypot(col - columns / 2, row - rows / 2);
      out[row * columns + col] = r < 100 ? Math.floor(r * 2.55) & 0xff : col;
    }
  }
  return out;
}

/** A rainbow palette, 256 entries of 16 bits per channel. */
export function rainbowPalette(): { red: Uint16Array; green: Uint16Array; blue: Uint16Array } {
  const red = new Uint16Array(256);
  const green = new Uint16Array(256);
  const blue = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = hueRgb((i / 256) * 0.83); // red to violet, without wrapping back to red
    red[i] = r * 257; green[i] = g * 257; blue[i] = b * 257;
  }
  return { red, green, blue };
}

/** 12-bit greyscale: a diagonal ramp with a grid of discs, for the LUT images. */
export function lutTestImage(): Uint16Array {
  const { rows, columns } = LUT_IMAGE;
  const out = new Uint16Array(rows * columns);
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < columns; col++) {
      let v = Math.round(((row + col) / (rows + columns - 2)) * 4095);
      const dx = (col % 64) - 32;
      const dy = (row % 64) - 32;
      if (dx * dx + dy * dy < 144) v = 4095 - v;
      out[row * columns + col] = v;
    }
  }
  return out;
}

/** A 4096-entry, 16-bit LUT from a curve on 0..1 → 0..1. */
export function lutFromCurve(curve: (x: number) => number): Uint16Array {
  const out = new Uint16Array(4096);
  for (let i = 0; i < 4096; i++) out[i] = Math.round(Math.max(0, Math.min(1, curve(i / 4095))) * 65535);
  return out;
}
