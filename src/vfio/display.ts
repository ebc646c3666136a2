/**
 * What a display device shows now, as pixels and as a PNG. One path for any
 * device that answers VFIO_DEVICE_QUERY_GFX_PLANE: a REGION plane (mdpy) is
 * read through an mmap of the region the plane names; a DMABUF plane (mbochs)
 * through a read-only mapping of the exported dma-buf, or, where the exporter
 * refuses that (mbochs on Linux 6.12), from the VRAM BAR at the scan-out
 * offset the device's own registers give. Nothing is guessed: a plane whose
 * pixels cannot be located exactly, or whose format cannot be converted, is
 * refused with a VfioError, never turned into a wrong picture.
 */
import { encode as encodePngImage } from 'fast-png';
import { VfioError } from '../errors.js';
import type { GfxPlaneInfo } from '../uapi/vfio.js';
import type { Device } from './device.js';

/** A captured frame. */
export interface DisplayCapture {
  /** Visible pixels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** Bytes per row in the device's framebuffer (the plane's stride). */
  stride: number;
  /** The plane's DRM fourcc as text ('XR24' for XRGB8888). */
  format: string;
  /** The plane's DRM fourcc as a number (0x34325258 for XRGB8888). */
  drmFormat: number;
  /** Whether the format carries alpha (the PNG then keeps it). */
  hasAlpha: boolean;
  /** The pixels, converted to 8-bit RGBA, `width * 4` bytes per row, top row first (alpha 255 for formats without one). */
  pixels: Uint8Array;
  /** Where they were read: the plane's region, the dma-buf, or the VRAM BAR behind a dma-buf plane. */
  source: 'region' | 'dmabuf' | 'vram';
  /** The plane as the kernel described it. */
  plane: GfxPlaneInfo;
  /** The PNG of the frame, when `captureDisplay(…, { png: true })` asked for it. */
  png?: Buffer;
}

/** Options of {@link captureDisplay}. */
export interface CaptureOptions {
  /** Also encode the frame as a PNG (`DisplayCapture.png`). */
  png?: boolean;
}

/** A pixel format the capture converts: bytes per pixel and a reader of one pixel into RGBA. */
interface PixelFormat {
  bpp: number;
  alpha: boolean;
  /** Writes pixel `s` of `src` as RGBA at `d` of `dst`. */
  convert(src: Uint8Array, s: number, dst: Uint8Array, d: number): void;
}

const fourcc = (s: string): number => s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | ((s.charCodeAt(3) << 24) >>> 0);

/** Little-endian DRM formats: XRGB8888 is bytes B, G, R, X in memory. */
const FORMATS = new Map<number, PixelFormat>([
  [fourcc('XR24'), { bpp: 4, alpha: false, convert: (s, i, d, o) => ((d[o] = s[i + 2]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i]!), (d[o + 3] = 255)) }],
  [fourcc('AR24'), { bpp: 4, alpha: true, convert: (s, i, d, o) => ((d[o] = s[i + 2]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i]!), (d[o + 3] = s[i + 3]!)) }],
  [fourcc('XB24'), { bpp: 4, alpha: false, convert: (s, i, d, o) => ((d[o] = s[i]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i + 2]!), (d[o + 3] = 255)) }],
  [fourcc('AB24'), { bpp: 4, alpha: true, convert: (s, i, d, o) => ((d[o] = s[i]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i + 2]!), (d[o + 3] = s[i + 3]!)) }],
  [fourcc('RG24'), { bpp: 3, alpha: false, convert: (s, i, d, o) => ((d[o] = s[i + 2]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i]!), (d[o + 3] = 255)) }],
  [fourcc('BG24'), { bpp: 3, alpha: false, convert: (s, i, d, o) => ((d[o] = s[i]!), (d[o + 1] = s[i + 1]!), (d[o + 2] = s[i + 2]!), (d[o + 3] = 255)) }],
  [
    fourcc('RG16'),
    {
      bpp: 2,
      alpha: false,
      convert: (s, i, d, o) => {
        const v = s[i]! | (s[i + 1]! << 8);
        const r = v >>> 11;
        const g = (v >>> 5) & 0x3f;
        const b = v & 0x1f;
        d[o] = (r << 3) | (r >>> 2);
        d[o + 1] = (g << 2) | (g >>> 4);
        d[o + 2] = (b << 3) | (b >>> 2);
        d[o + 3] = 255;
      },
    },
  ],
]);

/** The fourccs {@link captureDisplay} converts ('XR24', 'AR24', …). */
export const CAPTURE_FORMATS: readonly string[] = [...FORMATS.keys()].map((c) => String.fromCharCode(c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, c >>> 24));

const PAGE = 4096;
const OP = 'capture display';

function fail(code: string, message: string, hint?: string): VfioError {
  return new VfioError({ code, operation: OP, message: `${code}: ${message}`, ...(hint ? { hint } : {}) });
}

/** Which plane kind the device offers, probing REGION first. */
function planeKind(device: Device): 'region' | 'dmabuf' {
  if (device.gfxPlaneSupported('region')) return 'region';
  if (device.gfxPlaneSupported('dmabuf')) return 'dmabuf';
  throw fail('ERR_VFIO_NO_DISPLAY', 'the device answers no QUERY_GFX_PLANE (it has no display plane)', 'only display devices (mdpy, mbochs, a vGPU) have a gfx plane');
}

/**
 * `length` bytes at byte `offset` of region `index`, read through an mmap from
 * the region's start (display drivers allow mmap at the region's offset only:
 * mdpy and mbochs refuse any other); pages are touched only where read.
 */
function readMapped(device: Device, index: number, offset: number, length: number): Uint8Array {
  const mapLength = Math.ceil((offset + length) / PAGE) * PAGE;
  const view = device.mmap(index, { offset: 0n, length: BigInt(Math.min(mapLength, Number(device.regionInfo(index).size))) });
  try {
    const out = new Uint8Array(length);
    view.readInto(offset, out);
    return out;
  } finally {
    view.unmap();
  }
}

/** The QEMU/Bochs "DISPI" display (PCI 1234:1111, mbochs): where the scan-out starts in VRAM, from its registers. */
function bochsScanout(device: Device, plane: GfxPlaneInfo, bpp: number): number | null {
  const cfg = device.pciConfig();
  if (cfg.vendorId !== 0x1234 || cfg.deviceId !== 0x1111) return null;
  const mmio = device.region(2);
  const reg = (i: number): number => mmio.read16(0x500 + 2 * i);
  const [xres, yres, depth, enable, virtWidth, xOff, yOff] = [reg(1), reg(2), reg(3), reg(4), reg(6), reg(8), reg(9)];
  const stride = Math.max(virtWidth, xres) * (depth / 8);
  // The registers must describe the very plane the kernel reported, or the picture would be wrong.
  if ((enable & 1) === 0 || xres !== plane.width || yres !== plane.height || depth !== bpp * 8 || stride !== plane.stride) return null;
  return xOff * (depth / 8) + yOff * stride;
}

function planeBytes(device: Device, plane: GfxPlaneInfo, bpp: number): { bytes: Uint8Array; source: DisplayCapture['source'] } {
  const need = plane.stride * (plane.height - 1) + plane.width * bpp;
  if (plane.regionIndex !== undefined) {
    const info = device.regionInfo(plane.regionIndex);
    if (need > Number(info.size)) throw fail('ERR_VFIO_GFX_PLANE', `the plane (${need} bytes) does not fit region ${plane.regionIndex} (${info.size} bytes)`);
    const mappable = info.flagNames.includes('MMAP');
    // Read through a mapping: a driver's read() of its framebuffer may be wrong (mdpy ignores the offset).
    if (mappable) return { bytes: readMapped(device, plane.regionIndex, 0, need), source: 'region' };
    return { bytes: device.region(plane.regionIndex).read(0, need), source: 'region' };
  }
  if (plane.dmabufId === undefined) throw fail('ERR_VFIO_GFX_PLANE', 'the plane names neither a region nor a dma-buf');
  // The exporter's own mapping first; mbochs on 6.12 refuses it (and refuses to
  // export a mode whose offset is not page-aligned), and is read from VRAM instead.
  let refused: VfioError;
  try {
    const view = device.getGfxDmabuf(plane.dmabufId).map(Math.ceil(need / PAGE) * PAGE);
    try {
      const out = new Uint8Array(need);
      view.readInto(0, out);
      return { bytes: out, source: 'dmabuf' };
    } finally {
      view.unmap();
    }
  } catch (e) {
    if (!(e instanceof VfioError) || e.code === 'ERR_VFIO_CLOSED') throw e;
    refused = e;
  }
  const offset = bochsScanout(device, plane, bpp);
  if (offset === null) {
    throw fail('ERR_VFIO_GFX_PLANE', `the dma-buf of plane ${plane.dmabufId} cannot be mapped (${refused.message}), and where its pixels lie in the device's memory is not known for this device`, refused.hint);
  }
  const vram = device.regionInfo(0);
  if (offset + need > Number(vram.size)) throw fail('ERR_VFIO_GFX_PLANE', `the scan-out (${offset}+${need} bytes) lies outside VRAM (${vram.size} bytes)`);
  return { bytes: readMapped(device, 0, offset, need), source: 'vram' };
}

/**
 * Captures what a display device shows now: queries its gfx plane
 * (VFIO_DEVICE_QUERY_GFX_PLANE), reads the plane's pixels where the plane says
 * they are, and converts them to RGBA.
 *
 * @param device - an open display device (mdpy, mbochs, or any device that answers QUERY_GFX_PLANE)
 * @param options - `png: true` to also encode the frame as a PNG
 * @returns the frame: `{ width, height, stride, format, pixels, … }`
 * @throws {@link VfioError} `ERR_VFIO_NO_DISPLAY` when the device has no gfx plane;
 *   `ERR_VFIO_DISPLAY_OFF` when the plane has no mode (width or height 0, e.g. mbochs before a mode is set);
 *   `ERR_VFIO_GFX_FORMAT` for a pixel format it cannot convert (see {@link CAPTURE_FORMATS});
 *   `ERR_VFIO_GFX_PLANE` when the plane's pixels cannot be located exactly; errno codes from the ioctls and mmap.
 */
export function captureDisplay(device: Device, options: CaptureOptions = {}): DisplayCapture {
  const kind = planeKind(device);
  const plane = device.queryGfxPlane({ kind });
  if (plane.width === 0 || plane.height === 0) {
    throw fail('ERR_VFIO_DISPLAY_OFF', 'the display shows nothing: its plane has no mode', kind === 'dmabuf' ? 'set a mode first (for mbochs: XRES, YRES, BPP 32 and ENABLE through the DISPI registers)' : undefined);
  }
  const fmt = FORMATS.get(plane.drmFormat);
  if (!fmt) throw fail('ERR_VFIO_GFX_FORMAT', `cannot convert the plane's pixel format ${plane.drmFormatName}`, `formats converted: ${CAPTURE_FORMATS.join(', ')}`);
  if (plane.drmFormatMod !== 0n) throw fail('ERR_VFIO_GFX_FORMAT', `cannot convert a plane with format modifier 0x${plane.drmFormatMod.toString(16)} (tiled or compressed)`);
  if (plane.stride < plane.width * fmt.bpp) throw fail('ERR_VFIO_GFX_PLANE', `the plane's stride ${plane.stride} is shorter than a row (${plane.width} × ${fmt.bpp} bytes)`);
  const { bytes, source } = planeBytes(device, plane, fmt.bpp);
  const pixels = new Uint8Array(plane.width * plane.height * 4);
  for (let y = 0, d = 0; y < plane.height; y++) {
    for (let x = 0, s = y * plane.stride; x < plane.width; x++, s += fmt.bpp, d += 4) fmt.convert(bytes, s, pixels, d);
  }
  const capture: DisplayCapture = {
    width: plane.width,
    height: plane.height,
    stride: plane.stride,
    format: plane.drmFormatName,
    drmFormat: plane.drmFormat,
    hasAlpha: fmt.alpha,
    pixels,
    source,
    plane,
  };
  if (options.png) capture.png = encodePng(capture);
  return capture;
}

/**
 * Encodes a frame as an 8-bit PNG: RGB for formats without alpha, RGBA for those with one.
 *
 * @param frame - `width`, `height` and RGBA `pixels` (a {@link DisplayCapture}, or your own)
 */
export function encodePng(frame: Pick<DisplayCapture, 'width' | 'height' | 'pixels'> & { hasAlpha?: boolean }): Buffer {
  const { width, height, pixels } = frame;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new RangeError(`width and height must be positive integers, got ${width}×${height}`);
  if (!(pixels instanceof Uint8Array) || pixels.length !== width * height * 4) throw new RangeError(`pixels must be a Uint8Array of width × height × 4 = ${width * height * 4} bytes`);
  if (frame.hasAlpha) return Buffer.from(encodePngImage({ width, height, data: pixels, channels: 4, depth: 8 }));
  const rgb = new Uint8Array(width * height * 3);
  for (let s = 0, d = 0; s < pixels.length; s += 4, d += 3) {
    rgb[d] = pixels[s]!;
    rgb[d + 1] = pixels[s + 1]!;
    rgb[d + 2] = pixels[s + 2]!;
  }
  return Buffer.from(encodePngImage({ width, height, data: rgb, channels: 3, depth: 8 }));
}
