/**
 * A test card to draw on a display device: colour bars, a grey ramp, and text
 * in a built-in 5×7 bitmap font. Pure pixels (XRGB8888 as 0x00RRGGBB numbers),
 * no device code: the demo writes them into a framebuffer, the tests compare
 * the screenshots against them.
 */

/** 5×7 glyphs, one string of five 0/1 per row. */
const GLYPHS: Record<string, string> = {
  A: '01110 10001 10001 11111 10001 10001 10001',
  B: '11110 10001 10001 11110 10001 10001 11110',
  C: '01110 10001 10000 10000 10000 10001 01110',
  D: '11110 10001 10001 10001 10001 10001 11110',
  E: '11111 10000 10000 11110 10000 10000 11111',
  F: '11111 10000 10000 11110 10000 10000 10000',
  G: '01110 10001 10000 10111 10001 10001 01111',
  H: '10001 10001 10001 11111 10001 10001 10001',
  I: '01110 00100 00100 00100 00100 00100 01110',
  J: '00111 00010 00010 00010 00010 10010 01100',
  K: '10001 10010 10100 11000 10100 10010 10001',
  L: '10000 10000 10000 10000 10000 10000 11111',
  M: '10001 11011 10101 10101 10001 10001 10001',
  N: '10001 10001 11001 10101 10011 10001 10001',
  O: '01110 10001 10001 10001 10001 10001 01110',
  P: '11110 10001 10001 11110 10000 10000 10000',
  Q: '01110 10001 10001 10001 10101 10010 01101',
  R: '11110 10001 10001 11110 10100 10010 10001',
  S: '01111 10000 10000 01110 00001 00001 11110',
  T: '11111 00100 00100 00100 00100 00100 00100',
  U: '10001 10001 10001 10001 10001 10001 01110',
  V: '10001 10001 10001 10001 10001 01010 00100',
  W: '10001 10001 10001 10101 10101 10101 01010',
  X: '10001 10001 01010 00100 01010 10001 10001',
  Y: '10001 10001 10001 01010 00100 00100 00100',
  Z: '11111 00001 00010 00100 01000 10000 11111',
  0: '01110 10001 10011 10101 11001 10001 01110',
  1: '00100 01100 00100 00100 00100 00100 01110',
  2: '01110 10001 00001 00010 00100 01000 11111',
  3: '11111 00010 00100 00010 00001 10001 01110',
  4: '00010 00110 01010 10010 11111 00010 00010',
  5: '11111 10000 11110 00001 00001 10001 01110',
  6: '00110 01000 10000 11110 10001 10001 01110',
  7: '11111 00001 00010 00100 01000 01000 01000',
  8: '01110 10001 10001 01110 10001 10001 01110',
  9: '01110 10001 10001 01111 00001 00010 01100',
  ' ': '00000 00000 00000 00000 00000 00000 00000',
  '-': '00000 00000 00000 11111 00000 00000 00000',
  '.': '00000 00000 00000 00000 00000 01100 01100',
  ':': '00000 01100 01100 00000 01100 01100 00000',
  '/': '00001 00001 00010 00100 01000 10000 10000',
  ',': '00000 00000 00000 00000 01100 00100 01000',
};

/** Colour bars, left to right: white, yellow, cyan, green, magenta, red, blue, black. */
export const BARS = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000];

/** Draws `text` (upper-cased; unknown characters as blanks) at (x, y), each font pixel `scale`×`scale`. */
export function drawText(px: Uint32Array, width: number, text: string, x: number, y: number, scale: number, colour: number): void {
  const height = px.length / width;
  for (const [i, ch] of [...text.toUpperCase()].entries()) {
    const rows = (GLYPHS[ch] ?? GLYPHS[' ']!).split(' ');
    for (let r = 0; r < 7; r++) {
      for (let c = 0; c < 5; c++) {
        if (rows[r]![c] !== '1') continue;
        for (let dy = 0; dy < scale; dy++) {
          const py = y + r * scale + dy;
          if (py < 0 || py >= height) continue;
          for (let dx = 0; dx < scale; dx++) {
            const pxX = x + (i * 6 + c) * scale + dx;
            if (pxX >= 0 && pxX < width) px[py * width + pxX] = colour;
          }
        }
      }
    }
  }
}

/** The width in pixels of `text` drawn at `scale`. */
export const textWidth = (text: string, scale: number): number => (text.length * 6 - 1) * scale;

/**
 * A width×height test card as XRGB8888 pixels (0x00RRGGBB): colour bars over
 * the top two thirds, a grey ramp below, "VFIO" large on a white box in the
 * middle and `caption` under it.
 */
export function drawTestCard(width: number, height: number, caption: string): Uint32Array {
  const px = new Uint32Array(width * height);
  const barsEnd = Math.floor((height * 2) / 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      px[y * width + x] = y < barsEnd ? BARS[Math.floor((x * BARS.length) / width)]! : Math.floor((x * 255) / Math.max(1, width - 1)) * 0x010101;
    }
  }
  const big = Math.max(2, Math.floor(height / 40));
  const small = Math.max(1, Math.floor(big / 3));
  const boxW = Math.max(textWidth('VFIO', big), textWidth(caption, small)) + 4 * big;
  const boxH = 7 * big + 7 * small + 5 * big;
  const x0 = Math.floor((width - boxW) / 2);
  const y0 = Math.floor((barsEnd - boxH) / 2);
  for (let y = Math.max(0, y0); y < Math.min(height, y0 + boxH); y++) px.fill(0xffffff, y * width + Math.max(0, x0), y * width + Math.min(width, x0 + boxW));
  drawText(px, width, 'VFIO', Math.floor((width - textWidth('VFIO', big)) / 2), y0 + 2 * big, big, 0x1a237e);
  drawText(px, width, caption, Math.floor((width - textWidth(caption, small)) / 2), y0 + 10 * big, small, 0x000000);
  return px;
}
