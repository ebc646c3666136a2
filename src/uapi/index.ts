/**
 * Pure-TypeScript codecs of the VFIO and iommufd uapi: struct layouts,
 * constants and name helpers, capability chains, and per-ioctl decoders and
 * encoders. The native addon hands these the raw struct bytes.
 */
export * from './layouts.js';
export * from './constants.js';
export {
  ERR_VFIO_BAD_CAP,
  ERR_VFIO_BAD_CAP_CHAIN,
  ERR_VFIO_BAD_STRUCT,
  bitNames,
} from './binary.js';
export * from './caps.js';
export * from './vfio.js';
export * from './iommufd.js';
