// Draws a frame into a canvas at the image's own resolution; zoom and pan are the page's CSS
// transform of that canvas (the GPU scales it), so a window change redraws rows × columns pixels
// and nothing more.
import { CodedError } from '../../shared/coded-error.js';
import { renderRgba, type Pixels, type RenderInstance, type RenderOptions } from './render-rgba.js';

export class FrameCanvas {
  private image: ImageData | undefined;

  constructor(readonly canvas: HTMLCanvasElement) {}

  /** Renders and shows a frame; returns the milliseconds it took. */
  draw(pixels: Pixels, instance: RenderInstance, options: RenderOptions = {}): number {
    const t0 = performance.now();
    const { rows, columns } = instance;
    if (this.canvas.width !== columns || this.canvas.height !== rows) {
      this.canvas.width = columns;
      this.canvas.height = rows;
    }
    const ctx = this.context();
    if (!this.image || this.image.width !== columns || this.image.height !== rows) this.image = ctx.createImageData(columns, rows);
    renderRgba(pixels, instance, options, this.image.data);
    ctx.putImageData(this.image, 0, 0);
    return performance.now() - t0;
  }

  /** A message instead of an image (e.g. a transfer syntax not decoded yet), never a blank. */
  /**
   * Shows a message instead of an image, on a canvas of `width` × `height`, in `fontPx` canvas
   * pixels (a page that scales the canvas passes 16 / its scale, so the text reads at 16 px).
   */
  message(text: string, width = 512, height = 512, fontPx = 16): void {
    this.canvas.width = width;
    this.canvas.height = height;
    const ctx = this.context();
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = '#f5c542';
    ctx.font = `${fontPx}px sans-serif`;
    ctx.textAlign = 'center';
    const words = text.split(' ');
    const lines: string[] = [];
    for (const w of words) {
      const last = lines.at(-1);
      if (last !== undefined && ctx.measureText(`${last} ${w}`).width < width - 2.5 * fontPx) lines[lines.length - 1] = `${last} ${w}`;
      else lines.push(w);
    }
    lines.forEach((l, i) => ctx.fillText(l, width / 2, height / 2 + (i - (lines.length - 1) / 2) * fontPx * 1.375));
    this.image = undefined;
  }

  private context(): CanvasRenderingContext2D {
    const ctx = this.canvas.getContext('2d', { willReadFrequently: false });
    if (!ctx) throw new CodedError('NO_CANVAS_CONTEXT', 'no 2D canvas context');
    return ctx;
  }
}
