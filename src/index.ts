/**
 * vfio: drive Linux VFIO, iommufd and mediated devices from Node.js.
 *
 * Start with {@link openDevice}, which opens a device by PCI address, mdev
 * UUID or cdev path on either backend and hands back the {@link Device} with
 * one {@link DmaSpace}. The layers below it are usable on their own: the
 * legacy {@link Container} and {@link Group}, the iommufd {@link IommuFd} and
 * {@link Ioas}, DMA buffers ({@link allocDmaBuffer}) and the {@link DmaMapper},
 * {@link Interrupts}, mediated devices ({@link MdevBus}), PCI config space
 * ({@link parsePciConfig}) and the uapi decoders. Every failure is a
 * {@link VfioError}.
 *
 * @packageDocumentation
 * @module vfio
 */
export { VfioError, ERR_VFIO_CLOSED, errnoName, errnoNumber, errnoMessage, type VfioErrorInit } from './errors.js';
export { hintFor, type HintContext } from './hints.js';
export { Container, CONTAINER_PATH, type MapDmaOptions } from './vfio/container.js';
export { Group } from './vfio/group.js';
export { Region, MappedRegion, type MmapOptions } from './vfio/region.js';
export { captureDisplay, encodePng, CAPTURE_FORMATS, type DisplayCapture, type CaptureOptions } from './vfio/display.js';
export {
  Device,
  GfxDmabuf,
  cdevDeviceName,
  type Backend,
  type IndexResult,
  type SetIrqsOptions,
  type IrqAction,
  type GfxPlaneQueryOptions,
  type DeviceEvent,
  type DeviceEventInfo,
} from './vfio/device.js';
export {
  Migration,
  MigrationData,
  MigrationError,
  migrate,
  allowedStates,
  MIGRATION_STATES,
  type MigrationState,
  type MigrationFlags,
  type SaveOptions,
  type LoadOptions,
  type MigrateOptions,
  type MigrateResult,
  type PrecopyInfo,
  type LoadResult,
} from './vfio/migration.js';
export { checkLoggingRanges, loggedPages, MAX_LOGGING_RANGES, type LoggingRange } from './dma/logging.js';
export { IommuFd, Ioas, Hwpt, IOMMUFD_PATH, type HwInfo } from './iommufd/iommufd.js';
export { allocDmaBuffer, type DmaBuffer, type DmaAllocOptions, type DmaSpace, type DmaMapOptions, type IovaRange } from './dma/buffer.js';
export { openDevice, resolveDevice, type OpenDeviceOptions, type OpenedDevice, type ResolvedDevice, type BackendChoice } from './vfio/open.js';
export { Interrupts, createEventFd, type InterruptEvent, type InterruptWaitOptions } from './vfio/interrupts.js';
export { heldCount } from './registry.js';
export { boundDriver } from './vfio/quirks.js';
export * from './mdev/bus.js';
export * from './uapi/index.js';
export * from './pci/index.js';
export { IovaAllocator, type IovaAllocatorOptions } from './dma/iova.js';
export {
  DmaMapper,
  DmaLimitError,
  DirtyTracking,
  memlockStatus,
  isMdev,
  type DmaMapping,
  type DmaMapperOptions,
  type DmaMapperMapOptions,
  type MemlockStatus,
  type DirtyProbe,
  type ProcReader,
} from './dma/mapper.js';
export { NvmeController, NvmeNamespace, findNvme, NVME_QEMU_ID, type NvmePciId, type NvmeMode, type NvmeOpenOptions, type NvmeMsixReport, type NvmeCommandOptions, type NvmePciErrorEvent, type NvmeControllerEvents } from './drivers/nvme/driver.js';
export { NvmeError, ERR_NVME_STATUS, statusName, planPrps, prpListPageCount, doorbellOffsets, maxTransferBytes, decodeVersion, type NvmeDoorbells, type NvmeVersion, type PrpPlan, type PrpPageIovas, type PrpListPage, type NvmeCqe, type NvmeSqe, type NvmeCap, type NvmeIdentifyController, type NvmeIdentifyNamespace, type NvmeLbaFormat, type NvmeErrorInit } from './drivers/nvme/spec.js';
export { EduDriver, findEdu, eduFactorial, EDU_REG, EDU_ID, EDU_DMA_LIMIT, EDU_DMA_MAX, type EduIrqMode, type EduOpenOptions, type EduWaitOptions, type EduRoundTrip } from './drivers/edu.js';
