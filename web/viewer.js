// The canvas view of one image: fit, zoom, pan and pinch, plus one-pointer window drags that it
// hands back to the page. Knows nothing about DICOM; it draws RGBA pixels under a view transform.

// A tinted (not grey) letterbox, so no pixel of a grey image can be mistaken for background.
export const BACKGROUND = [10, 12, 16];
const WHEEL_ZOOM = 0.0015; // per wheel delta pixel: a typical notch (100) zooms by ~16 %

export class Viewer {
  #canvas;
  #ctx;
  #image = null; // offscreen canvas holding the last rendered pixels at their own size
  #scale = 1; // screen (CSS) pixels per image pixel
  #tx = 0; // image origin on the canvas, CSS pixels
  #ty = 0;
  #fitted = true; // untouched by the user: keep fitting when the canvas resizes
  #pointers = new Map(); // pointerId -> last {x, y}
  #pinched = false; // once two fingers were down, a lone finger left behind must not window
  #overlay = null; // {canvas, region: [x, y, w, h] in image pixels}: the heat map
  #overlayOpacity = 0.45;
  #overlayVisible = true;
  #outline = null; // {canvas, region}: the lesion outline, drawn opaque over the heat map
  #outlineVisible = true;
  #blackOut = []; // [x, y, w, h] in image pixels: rectangles the shared copy will have black
  #drawn = null; // {from, to} in image pixels: the rectangle being drawn, while a pointer drags

  /** 'window' or 'pan': what a one-pointer drag does. */
  tool = 'window';

  /**
   * Set while the clinician draws rectangles to black out: a one-pointer drag then draws one (two
   * fingers still zoom and pan) and `onBlackOutDrawn([x, y, w, h])` gets it in image pixels (zoom
   * and pan undone; fractional, negative sizes when dragged up or left, possibly past the edges:
   * the Rust rule turns it into whole pixels).
   */
  onBlackOutDrawn = null;

  /** @param {(dx: number, dy: number) => void} onWindowDrag drag as fractions of the canvas size */
  constructor(canvas, onWindowDrag) {
    this.#canvas = canvas;
    this.#ctx = canvas.getContext('2d');
    this.onWindowDrag = onWindowDrag;
    new ResizeObserver(() => this.#resize()).observe(canvas);
    canvas.addEventListener('pointerdown', (e) => this.#down(e));
    canvas.addEventListener('pointermove', (e) => this.#move(e));
    for (const type of ['pointerup', 'pointercancel']) canvas.addEventListener(type, (e) => this.#up(e));
    canvas.addEventListener('wheel', (e) => this.#wheel(e), { passive: false });
    // A long press would open the context menu in the middle of a touch drag.
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  get hasImage() {
    return this.#image !== null;
  }

  /** Shows new pixels; `fit` resets the view (a new file), otherwise the zoom and pan stay. */
  show(rgba, columns, rows, fit) {
    if (rgba.byteLength !== columns * rows * 4) {
      throw new Error(`expected ${columns}×${rows} RGBA pixels, got ${rgba.byteLength} bytes`);
    }
    const image = this.#image ?? document.createElement('canvas');
    if (image.width !== columns || image.height !== rows) [image.width, image.height] = [columns, rows];
    image.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), columns, rows), 0, 0);
    this.#image = image;
    this.#canvas.shownPixels = image; // test hook: the frame as rendered, at its own size, without overlays
    if (fit) this.fit();
    else this.draw();
  }

  /**
   * Shows a heat map (RGBA, `width × height`) stretched over `region` = [x, y, w, h] of the image,
   * under the same zoom and pan as the image; `null` removes it.
   */
  setOverlay(rgba, width, height, region) {
    if (!rgba) {
      this.#overlay = null;
    } else {
      const canvas = document.createElement('canvas');
      [canvas.width, canvas.height] = [width, height];
      canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
      this.#overlay = { canvas, region };
    }
    this.draw();
  }

  /**
   * Shows a lesion outline (RGBA over `region` = [x, y, w, h], at the region's own size, transparent
   * off the line) under the same zoom and pan; `null` removes it.
   */
  /**
   * The lesion outline: `layer` is `{width, height, rgba}` (RGBA8, the region's size or scaled down
   * for a large picture), drawn stretched over `region` without smoothing; null removes it.
   */
  setOutline(layer, region) {
    if (!layer) {
      this.#outline = null;
    } else {
      const { width, height, rgba } = layer;
      const canvas = document.createElement('canvas');
      [canvas.width, canvas.height] = [width, height];
      canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
      this.#outline = { canvas, region };
    }
    this.draw();
  }

  /** The rectangles to black out, `[x, y, w, h]` in image pixels, drawn black over the image. */
  setBlackOut(rects) {
    this.#blackOut = rects.map((r) => [...r]);
    this.draw();
  }

  /** Whether a one-pointer drag draws a rectangle to black out (and `onBlackOutDrawn` gets it). */
  get drawing() {
    return this.onBlackOutDrawn !== null;
  }

  setOutlineVisible(visible) {
    this.#outlineVisible = visible;
    this.draw();
  }

  /** Heat map opacity (0–1) and visibility. */
  setOverlayStyle({ opacity = this.#overlayOpacity, visible = this.#overlayVisible }) {
    this.#overlayOpacity = Math.min(Math.max(opacity, 0), 1);
    this.#overlayVisible = visible;
    this.draw();
  }

  fit() {
    this.#fitted = true;
    if (this.#image) {
      const { width, height } = this.#cssSize();
      this.#scale = this.#fitScale();
      this.#tx = (width - this.#image.width * this.#scale) / 2;
      this.#ty = (height - this.#image.height * this.#scale) / 2;
    }
    this.draw();
  }

  /** Zooms by `factor` keeping the point (x, y) in CSS pixels (default: the centre) still. */
  zoomBy(factor, x, y) {
    if (!this.#image) return;
    const size = this.#cssSize();
    x ??= size.width / 2;
    y ??= size.height / 2;
    const fit = this.#fitScale();
    const scale = Math.min(Math.max(this.#scale * factor, fit / 4), Math.max(fit * 8, 40));
    const k = scale / this.#scale;
    this.#tx = x - (x - this.#tx) * k;
    this.#ty = y - (y - this.#ty) * k;
    this.#scale = scale;
    this.#fitted = false;
    this.draw();
  }

  panBy(dx, dy) {
    this.#tx += dx;
    this.#ty += dy;
    this.#fitted = false;
    this.draw();
  }

  draw() {
    const ctx = this.#ctx;
    const dpr = this.#canvas.width / Math.max(this.#cssSize().width, 1);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = `rgb(${BACKGROUND})`;
    ctx.fillRect(0, 0, this.#canvas.width, this.#canvas.height);
    if (!this.#image) return;
    // Smooth only when shrinking; enlarged pixels stay sharp so the reader sees the real samples.
    ctx.imageSmoothingEnabled = this.#scale < 1;
    const s = this.#scale * dpr;
    ctx.setTransform(s, 0, 0, s, this.#tx * dpr, this.#ty * dpr);
    ctx.drawImage(this.#image, 0, 0);
    const overlay = this.#overlay && this.#overlayVisible && this.#overlayOpacity > 0;
    if (overlay) {
      const [x, y, w, h] = this.#overlay.region;
      ctx.globalAlpha = this.#overlayOpacity;
      ctx.imageSmoothingEnabled = true; // the map is coarse: interpolate it, never show blocks
      ctx.drawImage(this.#overlay.canvas, x, y, w, h);
      ctx.globalAlpha = 1;
    }
    const outline = this.#outline && this.#outlineVisible;
    if (outline) {
      const [x, y, w, h] = this.#outline.region;
      ctx.imageSmoothingEnabled = false; // a line in the picture's own pixels
      ctx.drawImage(this.#outline.canvas, x, y, w, h);
    }
    const drawn = this.#drawn ? [rectOf(this.#drawn)] : [];
    for (const [x, y, w, h] of [...this.#blackOut, ...drawn]) {
      // Black, as shared, with a bright edge so the clinician sees where each one lies on a dark film.
      ctx.fillStyle = '#000';
      ctx.fillRect(x, y, w, h);
      ctx.strokeStyle = '#ffd166';
      ctx.lineWidth = 2 / this.#scale;
      ctx.strokeRect(x, y, w, h);
    }
    this.#canvas.dataset.blackOut = String(this.#blackOut.length); // test hook
    // Test hooks: whether a heat map and an outline are drawn, and at what opacity.
    this.#canvas.dataset.heatMap = overlay ? 'shown' : this.#overlay ? 'hidden' : 'none';
    this.#canvas.dataset.outline = outline ? 'shown' : this.#outline ? 'hidden' : 'none';
    this.#canvas.dataset.heatOpacity = String(this.#overlayOpacity);
    // Test hook: where the image landed, in canvas pixels, clipped to the canvas.
    const x0 = Math.max(0, Math.round(this.#tx * dpr));
    const y0 = Math.max(0, Math.round(this.#ty * dpr));
    const x1 = Math.min(this.#canvas.width, Math.round(this.#tx * dpr + this.#image.width * s));
    const y1 = Math.min(this.#canvas.height, Math.round(this.#ty * dpr + this.#image.height * s));
    this.#canvas.dataset.imageRect = `${x0} ${y0} ${Math.max(0, x1 - x0)} ${Math.max(0, y1 - y0)}`;
  }

  #cssSize() {
    return { width: this.#canvas.clientWidth, height: this.#canvas.clientHeight };
  }

  #fitScale() {
    const { width, height } = this.#cssSize();
    return Math.min(width / this.#image.width, height / this.#image.height) || 1;
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1;
    const { width, height } = this.#cssSize();
    this.#canvas.width = Math.max(1, Math.round(width * dpr));
    this.#canvas.height = Math.max(1, Math.round(height * dpr));
    if (this.#fitted) this.fit();
    else this.draw();
  }

  #point(e) {
    const r = this.#canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  /** A point in CSS pixels of the canvas, in image pixels under the current zoom and pan. */
  #toImage({ x, y }) {
    return { x: (x - this.#tx) / this.#scale, y: (y - this.#ty) / this.#scale };
  }

  #down(e) {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    this.#canvas.setPointerCapture(e.pointerId);
    this.#pointers.set(e.pointerId, this.#point(e));
    if (this.#pointers.size > 1) this.#pinched = true;
    // A second finger makes it a pinch: the rectangle begun is dropped.
    if (this.drawing && this.#image && this.#pointers.size === 1) {
      const at = this.#toImage(this.#point(e));
      this.#drawn = { from: at, to: at };
    } else {
      this.#drawn = null;
    }
  }

  #move(e) {
    const last = this.#pointers.get(e.pointerId);
    if (!last || !this.#image) return;
    const now = this.#point(e);
    if (this.#pointers.size === 1) {
      this.#pointers.set(e.pointerId, now);
      if (this.#pinched) return;
      if (this.#drawn) {
        this.#drawn.to = this.#toImage(now);
        this.draw();
        return;
      }
      const dx = now.x - last.x;
      const dy = now.y - last.y;
      if (this.tool === 'window') {
        const { width, height } = this.#cssSize();
        this.onWindowDrag(dx / width, dy / height);
      } else {
        this.panBy(dx, dy);
      }
      return;
    }
    // Two fingers: the midpoint pans and the spread zooms, both measured against the last move.
    const [a, b] = [...this.#pointers.values()];
    const before = pair(a, b);
    this.#pointers.set(e.pointerId, now);
    const [a2, b2] = [...this.#pointers.values()];
    const after = pair(a2, b2);
    this.#tx += after.x - before.x;
    this.#ty += after.y - before.y;
    this.zoomBy(before.d > 0 ? after.d / before.d : 1, after.x, after.y);
  }

  #up(e) {
    const wasDown = this.#pointers.delete(e.pointerId);
    if (this.#pointers.size === 0) this.#pinched = false;
    const drawn = this.#drawn;
    this.#drawn = null;
    if (!drawn || !wasDown) return;
    if (e.type === 'pointerup') drawn.to = this.#toImage(this.#point(e));
    const rect = rectOf(drawn);
    // A tap, or a slip of a couple of screen pixels, is not a rectangle.
    if (e.type === 'pointerup' && Math.abs(rect[2] * this.#scale) >= 3 && Math.abs(rect[3] * this.#scale) >= 3) {
      this.onBlackOutDrawn?.(rect);
    }
    this.draw();
  }

  #wheel(e) {
    e.preventDefault();
    const { x, y } = this.#point(e);
    const pixels = e.deltaMode === WheelEvent.DOM_DELTA_LINE ? e.deltaY * 16 : e.deltaY;
    this.zoomBy(Math.exp(-pixels * WHEEL_ZOOM), x, y);
  }
}

/** `[x, y, w, h]` of a rectangle dragged from `from` to `to` (negative sizes when dragged up or left). */
function rectOf({ from, to }) {
  return [from.x, from.y, to.x - from.x, to.y - from.y];
}

function pair(a, b) {
  return { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, d: Math.hypot(a.x - b.x, a.y - b.y) };
}
