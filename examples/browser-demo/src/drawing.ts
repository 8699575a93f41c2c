/**
 * The drawing canvas: stamp circles, squares and triangles in a few colours, paint with a brush,
 * or load a picture from a file. `modelPixels(size)` gives the model's input.
 */
import { EXAMPLE_SCENE, PALETTE, downsampleRgba, renderSceneRgba, type PaletteColour, type SceneShape } from './scene.js';

export type Tool = SceneShape | 'brush';

export class DrawingCanvas {
  readonly canvas: HTMLCanvasElement;
  private readonly context: CanvasRenderingContext2D;
  tool: Tool = 'circle';
  colour: PaletteColour = 'red';
  /** Stamp size in units of the side. */
  size = 0.3;
  private painting = false;
  private readonly listeners = new Set<() => void>();

  constructor(canvas: HTMLCanvasElement) {
    this.canvas = canvas;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) throw new Error('DrawingCanvas: this browser gives no 2D canvas context');
    this.context = context;
    this.clear();
    canvas.addEventListener('pointerdown', (event) => this.pointerDown(event));
    canvas.addEventListener('pointermove', (event) => this.pointerMove(event));
    window.addEventListener('pointerup', () => (this.painting = false));
  }

  get width(): number {
    return this.canvas.width;
  }

  /** Called after every change of the picture. */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  clear(): void {
    this.context.fillStyle = 'white';
    this.context.fillRect(0, 0, this.width, this.width);
    this.changed();
  }

  /** The example scene (a red circle, a blue square, a green triangle). */
  drawExample(): void {
    const rgba = renderSceneRgba(this.width, EXAMPLE_SCENE);
    this.context.putImageData(new ImageData(rgba, this.width, this.width), 0, 0);
    this.changed();
  }

  /** Draw an image file, scaled to cover the square canvas (centre crop) over white. */
  async drawFile(file: Blob): Promise<void> {
    const bitmap = await createImageBitmap(file);
    const side = Math.min(bitmap.width, bitmap.height);
    this.context.fillStyle = 'white';
    this.context.fillRect(0, 0, this.width, this.width);
    this.context.imageSmoothingQuality = 'high';
    this.context.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, this.width, this.width);
    bitmap.close();
    this.changed();
  }

  private point(event: PointerEvent): { u: number; v: number } {
    const box = this.canvas.getBoundingClientRect();
    return { u: (event.clientX - box.left) / box.width, v: (event.clientY - box.top) / box.height };
  }

  private pointerDown(event: PointerEvent): void {
    const { u, v } = this.point(event);
    if (this.tool === 'brush') {
      this.painting = true;
      this.brush(u, v);
      return;
    }
    this.stamp(this.tool, u, v);
  }

  private pointerMove(event: PointerEvent): void {
    if (!this.painting) return;
    const { u, v } = this.point(event);
    this.brush(u, v);
  }

  /** Paint a shape centred at (u, v) with the current colour and size (pixel-exact, no anti-aliasing). */
  stamp(shape: SceneShape, u: number, v: number): void {
    const base = this.context.getImageData(0, 0, this.width, this.width).data;
    const rgba = renderSceneRgba(this.width, [{ shape, colour: this.colour, x: u, y: v, size: this.size }], base);
    this.context.putImageData(new ImageData(rgba, this.width, this.width), 0, 0);
    this.changed();
  }

  private brush(u: number, v: number): void {
    this.context.fillStyle = PALETTE.find((p) => p.name === this.colour)!.css;
    this.context.beginPath();
    this.context.arc(u * this.width, v * this.width, Math.max(2, (this.size * this.width) / 8), 0, Math.PI * 2);
    this.context.fill();
    this.changed();
  }

  /** The model's input: `[size, size, 3]` floats in [0, 1] (block averages of the canvas). */
  modelPixels(size: number): Float32Array {
    const rgba = this.context.getImageData(0, 0, this.width, this.width).data;
    return downsampleRgba(rgba, this.width, size);
  }
}
