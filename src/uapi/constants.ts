/**
 * VFIO and iommufd uapi constants (Linux 6.12, x86_64): ioctl request numbers,
 * flag bits, extension and feature ids, fixed PCI indexes, region types, and
 * helpers that turn flag words and indexes into names.
 *
 * Ioctl numbers are from `uapi-6.12-layout.txt` (all are `_IO(';', nr)`, i.e.
 * `0x3b00 | nr`). Several numbers are shared between fd types (0x3b70 is
 * both VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a device and VFIO_IOMMU_GET_INFO
 * on a container): the meaning depends on the fd.
 */
import { bitNames } from './binary.js';

// ---- ioctl request numbers: VFIO --------------------------------------------------

/** Container: returns VFIO_API_VERSION (0). */
export const VFIO_GET_API_VERSION = 0x3b64;
/** Container: extension id by value → 0/1. */
export const VFIO_CHECK_EXTENSION = 0x3b65;
/** Container: iommu type by value. */
export const VFIO_SET_IOMMU = 0x3b66;
/** Group: struct vfio_group_status. */
export const VFIO_GROUP_GET_STATUS = 0x3b67;
/** Group: pointer to an s32 container (or iommufd) fd. */
export const VFIO_GROUP_SET_CONTAINER = 0x3b68;
/** Group: no argument. */
export const VFIO_GROUP_UNSET_CONTAINER = 0x3b69;
/** Group: NUL-terminated device name → new device fd. */
export const VFIO_GROUP_GET_DEVICE_FD = 0x3b6a;
/** Device: struct vfio_device_info (+ capabilities). */
export const VFIO_DEVICE_GET_INFO = 0x3b6b;
/** Device: struct vfio_region_info (+ capabilities). */
export const VFIO_DEVICE_GET_REGION_INFO = 0x3b6c;
/** Device: struct vfio_irq_info. */
export const VFIO_DEVICE_GET_IRQ_INFO = 0x3b6d;
/** Device: struct vfio_irq_set + data. */
export const VFIO_DEVICE_SET_IRQS = 0x3b6e;
/** Device: no argument. */
export const VFIO_DEVICE_RESET = 0x3b6f;
/** Device (vfio-pci): struct vfio_pci_hot_reset_info + devices. */
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = 0x3b70;
/** Device (vfio-pci): struct vfio_pci_hot_reset + group fds. */
export const VFIO_DEVICE_PCI_HOT_RESET = 0x3b71;
/** Device: struct vfio_device_gfx_plane_info. */
export const VFIO_DEVICE_QUERY_GFX_PLANE = 0x3b72;
/** Device: pointer to a u32 dmabuf id → new dma-buf fd. */
export const VFIO_DEVICE_GET_GFX_DMABUF = 0x3b73;
/** Device: struct vfio_device_ioeventfd. */
export const VFIO_DEVICE_IOEVENTFD = 0x3b74;
/** Device: struct vfio_device_feature + data. */
export const VFIO_DEVICE_FEATURE = 0x3b75;
/** Device cdev: struct vfio_device_bind_iommufd. */
export const VFIO_DEVICE_BIND_IOMMUFD = 0x3b76;
/** Device cdev: struct vfio_device_attach_iommufd_pt. */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = 0x3b77;
/** Device cdev: struct vfio_device_detach_iommufd_pt. */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = 0x3b78;
/** Migration data fd: struct vfio_precopy_info. */
export const VFIO_MIG_GET_PRECOPY_INFO = 0x3b79;
/** Container (type1): struct vfio_iommu_type1_info (+ capabilities). */
export const VFIO_IOMMU_GET_INFO = 0x3b70;
/** Container (type1): struct vfio_iommu_type1_dma_map. */
export const VFIO_IOMMU_MAP_DMA = 0x3b71;
/** Container (type1): struct vfio_iommu_type1_dma_unmap. */
export const VFIO_IOMMU_UNMAP_DMA = 0x3b72;
/** Container (SPAPR only; type1 answers ENOTTY). */
export const VFIO_IOMMU_ENABLE = 0x3b73;
/** Container (SPAPR only; type1 answers ENOTTY). */
export const VFIO_IOMMU_DISABLE = 0x3b74;
/** Container (type1): struct vfio_iommu_type1_dirty_bitmap. */
export const VFIO_IOMMU_DIRTY_PAGES = 0x3b75;
/** Container (SPAPR TCE). */
export const VFIO_IOMMU_SPAPR_TCE_GET_INFO = 0x3b70;
/** Container (SPAPR EEH). */
export const VFIO_EEH_PE_OP = 0x3b79;
/** Container (SPAPR TCE v2). */
export const VFIO_IOMMU_SPAPR_REGISTER_MEMORY = 0x3b75;
/** Container (SPAPR TCE v2). */
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = 0x3b76;
/** Container (SPAPR TCE v2). */
export const VFIO_IOMMU_SPAPR_TCE_CREATE = 0x3b77;
/** Container (SPAPR TCE v2). */
export const VFIO_IOMMU_SPAPR_TCE_REMOVE = 0x3b78;

// ---- ioctl request numbers: iommufd ---------------------------------------------

/** struct iommu_destroy. */
export const IOMMU_DESTROY = 0x3b80;
/** struct iommu_ioas_alloc. */
export const IOMMU_IOAS_ALLOC = 0x3b81;
/** struct iommu_ioas_allow_iovas. */
export const IOMMU_IOAS_ALLOW_IOVAS = 0x3b82;
/** struct iommu_ioas_copy. */
export const IOMMU_IOAS_COPY = 0x3b83;
/** struct iommu_ioas_iova_ranges (EMSGSIZE with num_iovas set when too small). */
export const IOMMU_IOAS_IOVA_RANGES = 0x3b84;
/** struct iommu_ioas_map. */
export const IOMMU_IOAS_MAP = 0x3b85;
/** struct iommu_ioas_unmap. */
export const IOMMU_IOAS_UNMAP = 0x3b86;
/** struct iommu_option. */
export const IOMMU_OPTION = 0x3b87;
/** struct iommu_vfio_ioas. */
export const IOMMU_VFIO_IOAS = 0x3b88;
/** struct iommu_hwpt_alloc. */
export const IOMMU_HWPT_ALLOC = 0x3b89;
/** struct iommu_hw_info. */
export const IOMMU_GET_HW_INFO = 0x3b8a;
/** struct iommu_hwpt_set_dirty_tracking. */
export const IOMMU_HWPT_SET_DIRTY_TRACKING = 0x3b8b;
/** struct iommu_hwpt_get_dirty_bitmap. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP = 0x3b8c;
/** struct iommu_hwpt_invalidate. */
export const IOMMU_HWPT_INVALIDATE = 0x3b8d;
/** struct iommu_fault_alloc. */
export const IOMMU_FAULT_QUEUE_ALLOC = 0x3b8e;

// ---- API version and extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU) ----------

/** What VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;
/** IOMMU type / extension: x86 type1 IOMMU (v1 unmap semantics). */
export const VFIO_TYPE1_IOMMU = 1;
/** IOMMU type / extension: POWER sPAPR TCE. */
export const VFIO_SPAPR_TCE_IOMMU = 2;
/** IOMMU type / extension: type1 v2 (the default; exact unmap semantics). */
export const VFIO_TYPE1v2_IOMMU = 3;
/** Extension: the IOMMU enforces DMA cache coherence. */
export const VFIO_DMA_CC_IOMMU = 4;
/** Extension: POWER EEH error recovery. */
export const VFIO_EEH = 5;
/** IOMMU type / extension: type1 with nesting (implies v2). */
export const VFIO_TYPE1_NESTING_IOMMU = 6;
/** IOMMU type / extension: sPAPR TCE v2. */
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
/** IOMMU type / extension: no-IOMMU mode (unsafe, CONFIG_VFIO_NOIOMMU). */
export const VFIO_NOIOMMU_IOMMU = 8;
/** Extension: VFIO_DMA_UNMAP_FLAG_ALL is supported. */
export const VFIO_UNMAP_ALL = 9;
/** Extension: VFIO_DMA_MAP/UNMAP_FLAG_VADDR are supported. */
export const VFIO_UPDATE_VADDR = 10;

/** Extension ids by name, for `checkExtension` tables and messages. */
export const VFIO_EXTENSIONS = {
  /** {@link VFIO_TYPE1_IOMMU}: x86 type1 IOMMU (v1 unmap semantics). */
  TYPE1: VFIO_TYPE1_IOMMU,
  /** {@link VFIO_SPAPR_TCE_IOMMU}: POWER sPAPR TCE. */
  SPAPR_TCE: VFIO_SPAPR_TCE_IOMMU,
  /** {@link VFIO_TYPE1v2_IOMMU}: type1 v2 (the default; exact unmap semantics). */
  TYPE1v2: VFIO_TYPE1v2_IOMMU,
  /** {@link VFIO_DMA_CC_IOMMU}: the IOMMU enforces DMA cache coherence. */
  DMA_CC: VFIO_DMA_CC_IOMMU,
  /** {@link VFIO_EEH}: POWER EEH error recovery. */
  EEH: VFIO_EEH,
  /** {@link VFIO_TYPE1_NESTING_IOMMU}: type1 with nesting (implies v2). */
  TYPE1_NESTING: VFIO_TYPE1_NESTING_IOMMU,
  /** {@link VFIO_SPAPR_TCE_v2_IOMMU}: sPAPR TCE v2. */
  SPAPR_TCE_v2: VFIO_SPAPR_TCE_v2_IOMMU,
  /** {@link VFIO_NOIOMMU_IOMMU}: no-IOMMU mode (unsafe, CONFIG_VFIO_NOIOMMU). */
  NOIOMMU: VFIO_NOIOMMU_IOMMU,
  /** {@link VFIO_UNMAP_ALL}: VFIO_DMA_UNMAP_FLAG_ALL is supported. */
  UNMAP_ALL: VFIO_UNMAP_ALL,
  /** {@link VFIO_UPDATE_VADDR}: VFIO_DMA_MAP/UNMAP_FLAG_VADDR are supported. */
  UPDATE_VADDR: VFIO_UPDATE_VADDR,
} as const;

// ---- group -------------------------------------------------------------------------

/** Group status: every device of the group is bound to a VFIO driver or unbound. */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
/** Group status: the group is attached to a container (or iommufd). */
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;
/** Group status flag names. */
export const GROUP_FLAGS = {
  /** {@link VFIO_GROUP_FLAGS_VIABLE}: every device of the group is bound to a VFIO driver or unbound. */
  VIABLE: VFIO_GROUP_FLAGS_VIABLE,
  /** {@link VFIO_GROUP_FLAGS_CONTAINER_SET}: the group is attached to a container (or iommufd). */
  CONTAINER_SET: VFIO_GROUP_FLAGS_CONTAINER_SET,
} as const;

// ---- device info ---------------------------------------------------------------------

/** Device info flag: VFIO_DEVICE_RESET is supported. */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** Device info flag: a vfio-pci device (fixed PCI region and irq indexes). */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
/** Device info flag: a vfio-platform device. */
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
/** Device info flag: a vfio-amba device. */
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
/** Device info flag: a vfio-ccw device (s390). */
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
/** Device info flag: a vfio-ap device (s390). */
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
/** Device info flag: a vfio-fsl-mc device. */
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
/** Device info flag: the reply carries a capability chain at cap_offset. */
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
/** Device info flag: a vfio-cdx device. */
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;
/** Device info flag names. */
export const DEVICE_FLAGS = {
  /** {@link VFIO_DEVICE_FLAGS_RESET}: VFIO_DEVICE_RESET is supported. */
  RESET: VFIO_DEVICE_FLAGS_RESET,
  /** {@link VFIO_DEVICE_FLAGS_PCI}: a vfio-pci device (fixed PCI region and irq indexes). */
  PCI: VFIO_DEVICE_FLAGS_PCI,
  /** {@link VFIO_DEVICE_FLAGS_PLATFORM}: a vfio-platform device. */
  PLATFORM: VFIO_DEVICE_FLAGS_PLATFORM,
  /** {@link VFIO_DEVICE_FLAGS_AMBA}: a vfio-amba device. */
  AMBA: VFIO_DEVICE_FLAGS_AMBA,
  /** {@link VFIO_DEVICE_FLAGS_CCW}: a vfio-ccw device (s390). */
  CCW: VFIO_DEVICE_FLAGS_CCW,
  /** {@link VFIO_DEVICE_FLAGS_AP}: a vfio-ap device (s390). */
  AP: VFIO_DEVICE_FLAGS_AP,
  /** {@link VFIO_DEVICE_FLAGS_FSL_MC}: a vfio-fsl-mc device. */
  FSL_MC: VFIO_DEVICE_FLAGS_FSL_MC,
  /** {@link VFIO_DEVICE_FLAGS_CAPS}: the reply carries a capability chain at cap_offset. */
  CAPS: VFIO_DEVICE_FLAGS_CAPS,
  /** {@link VFIO_DEVICE_FLAGS_CDX}: a vfio-cdx device. */
  CDX: VFIO_DEVICE_FLAGS_CDX,
} as const;

/** Device-info capability (ids have their own namespace; 1–4 are s390 zPCI): zPCI base info (kept raw). */
export const VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
/** Device-info capability: s390 zPCI group (kept raw). */
export const VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
/** Device-info capability: s390 zPCI utility string (kept raw). */
export const VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
/** Device-info capability: s390 zPCI PCI function path (kept raw). */
export const VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
/** Device-info capability: PCIe AtomicOp completion widths. */
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;
/** PCI_ATOMIC_COMP flag: 32-bit AtomicOp completion. */
export const VFIO_PCI_ATOMIC_COMP32 = 1 << 0;
/** PCI_ATOMIC_COMP flag: 64-bit AtomicOp completion. */
export const VFIO_PCI_ATOMIC_COMP64 = 1 << 1;
/** PCI_ATOMIC_COMP flag: 128-bit CAS completion. */
export const VFIO_PCI_ATOMIC_COMP128 = 1 << 2;
/** PCI_ATOMIC_COMP flag names. */
export const ATOMIC_COMP_FLAGS = {
  /** {@link VFIO_PCI_ATOMIC_COMP32}: 32-bit AtomicOp completion. */
  COMP32: VFIO_PCI_ATOMIC_COMP32,
  /** {@link VFIO_PCI_ATOMIC_COMP64}: 64-bit AtomicOp completion. */
  COMP64: VFIO_PCI_ATOMIC_COMP64,
  /** {@link VFIO_PCI_ATOMIC_COMP128}: 128-bit CAS completion. */
  COMP128: VFIO_PCI_ATOMIC_COMP128,
} as const;

/** `device_api` of vfio-pci mdev types (the value of an mdev type's `device_api` attribute). */
export const VFIO_DEVICE_API_PCI_STRING = 'vfio-pci';
/** `device_api` of vfio-platform mdev types. */
export const VFIO_DEVICE_API_PLATFORM_STRING = 'vfio-platform';
/** `device_api` of vfio-amba mdev types. */
export const VFIO_DEVICE_API_AMBA_STRING = 'vfio-amba';
/** `device_api` of vfio-ccw mdev types. */
export const VFIO_DEVICE_API_CCW_STRING = 'vfio-ccw';
/** `device_api` of vfio-ap mdev types. */
export const VFIO_DEVICE_API_AP_STRING = 'vfio-ap';

// ---- regions -------------------------------------------------------------------------

/** Region flag: pread is supported. */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
/** Region flag: pwrite is supported. */
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
/** Region flag: mmap is supported (possibly only the sparse areas). */
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
/** Region flag: the reply carries a capability chain at cap_offset. */
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
/** Region flag names. */
export const REGION_FLAGS = {
  /** {@link VFIO_REGION_INFO_FLAG_READ}: pread is supported. */
  READ: VFIO_REGION_INFO_FLAG_READ,
  /** {@link VFIO_REGION_INFO_FLAG_WRITE}: pwrite is supported. */
  WRITE: VFIO_REGION_INFO_FLAG_WRITE,
  /** {@link VFIO_REGION_INFO_FLAG_MMAP}: mmap is supported (possibly only the sparse areas). */
  MMAP: VFIO_REGION_INFO_FLAG_MMAP,
  /** {@link VFIO_REGION_INFO_FLAG_CAPS}: the reply carries a capability chain at cap_offset. */
  CAPS: VFIO_REGION_INFO_FLAG_CAPS,
} as const;

/** Region-info capability (ids have their own namespace): only the listed areas of the region may be mmapped. */
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
/** Region-info capability: the type/subtype of a device-specific region. */
export const VFIO_REGION_INFO_CAP_TYPE = 2;
/** Region-info capability: the MSI-X table of this BAR may be mmapped. */
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
/** Deprecated, no longer provided by the kernel. */
export const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;
/** Deprecated, no longer provided by the kernel. */
export const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

/** Region type bit (vfio_region_info_cap_type.type): a vendor-specific type, `PCI_VENDOR_TYPE | vendor id`. */
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 0x8000_0000;
/** Mask of the PCI vendor id in a PCI_VENDOR_TYPE region type. */
export const VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;
/** Region type: graphics (subtype EDID). */
export const VFIO_REGION_TYPE_GFX = 1;
/** Region type: s390 channel I/O. */
export const VFIO_REGION_TYPE_CCW = 2;
/** Region type: v1 migration (deprecated, no longer provided). */
export const VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;
/** Subtype of PCI_VENDOR_TYPE | 0x8086: the IGD OpRegion. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;
/** Subtype of PCI_VENDOR_TYPE | 0x8086: IGD host bridge config. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;
/** Subtype of PCI_VENDOR_TYPE | 0x8086: IGD LPC bridge config. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;
/** Subtype of PCI_VENDOR_TYPE | 0x10de (deprecated). */
export const VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1;
/** Subtype of PCI_VENDOR_TYPE | 0x1014 (deprecated). */
export const VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1;
/** Subtype of GFX: the EDID region (struct vfio_region_gfx_edid). */
export const VFIO_REGION_SUBTYPE_GFX_EDID = 1;
/** Subtype of CCW: asynchronous command region. */
export const VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1;
/** Subtype of CCW: subchannel information block. */
export const VFIO_REGION_SUBTYPE_CCW_SCHIB = 2;
/** Subtype of CCW: channel report word. */
export const VFIO_REGION_SUBTYPE_CCW_CRW = 3;
/** Subtype of MIGRATION_DEPRECATED: the v1 migration region (no longer provided). */
export const VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1;
/** EDID link_state (vfio_region_gfx_edid.link_state): monitor on. */
export const VFIO_DEVICE_GFX_LINK_STATE_UP = 1;
/** EDID link_state: monitor off. */
export const VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2;

/** vfio-pci region index of BAR0 (the fixed vfio-pci region indexes are 0–8). */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
/** vfio-pci region index of BAR1. */
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
/** vfio-pci region index of BAR2. */
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
/** vfio-pci region index of BAR3. */
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
/** vfio-pci region index of BAR4. */
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
/** vfio-pci region index of BAR5. */
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
/** vfio-pci region index of the expansion ROM. */
export const VFIO_PCI_ROM_REGION_INDEX = 6;
/** vfio-pci region index of PCI config space. */
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
/** vfio-pci region index of the legacy VGA ranges. */
export const VFIO_PCI_VGA_REGION_INDEX = 8;
/** Indexes ≥ this are device specific and described by a TYPE capability. */
export const VFIO_PCI_NUM_REGIONS = 9;

// ---- irqs ------------------------------------------------------------------------------

/** IRQ info flag: signalled through eventfds. */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
/** IRQ info flag: MASK/UNMASK actions are supported. */
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
/** IRQ info flag: masked after each signal until UNMASK (level-triggered INTx). */
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
/** IRQ info flag: vectors cannot be added without disabling the index first. */
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** IRQ info flag names. */
export const IRQ_FLAGS = {
  /** {@link VFIO_IRQ_INFO_EVENTFD}: signalled through eventfds. */
  EVENTFD: VFIO_IRQ_INFO_EVENTFD,
  /** {@link VFIO_IRQ_INFO_MASKABLE}: MASK/UNMASK actions are supported. */
  MASKABLE: VFIO_IRQ_INFO_MASKABLE,
  /** {@link VFIO_IRQ_INFO_AUTOMASKED}: masked after each signal until UNMASK (level-triggered INTx). */
  AUTOMASKED: VFIO_IRQ_INFO_AUTOMASKED,
  /** {@link VFIO_IRQ_INFO_NORESIZE}: vectors cannot be added without disabling the index first. */
  NORESIZE: VFIO_IRQ_INFO_NORESIZE,
} as const;

/** SET_IRQS: no data; act on the vectors directly. */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
/** Data is one u8 per vector. */
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
/** Data is one s32 eventfd per vector (-1 = de-assign / skip). */
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
/** SET_IRQS action: mask. */
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
/** SET_IRQS action: unmask. */
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
/** SET_IRQS action: set the trigger eventfds, or trigger (loopback) with NONE/BOOL. */
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
/** All SET_IRQS DATA_* bits. */
export const VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
/** All SET_IRQS ACTION_* bits. */
export const VFIO_IRQ_SET_ACTION_TYPE_MASK =
  VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;
/** SET_IRQS flag names. */
export const IRQ_SET_FLAGS = {
  /** {@link VFIO_IRQ_SET_DATA_NONE}: no data; act on the vectors directly. */
  DATA_NONE: VFIO_IRQ_SET_DATA_NONE,
  /** {@link VFIO_IRQ_SET_DATA_BOOL}: Data is one u8 per vector. */
  DATA_BOOL: VFIO_IRQ_SET_DATA_BOOL,
  /** {@link VFIO_IRQ_SET_DATA_EVENTFD}: Data is one s32 eventfd per vector (-1 = de-assign / skip). */
  DATA_EVENTFD: VFIO_IRQ_SET_DATA_EVENTFD,
  /** {@link VFIO_IRQ_SET_ACTION_MASK}: mask. */
  ACTION_MASK: VFIO_IRQ_SET_ACTION_MASK,
  /** {@link VFIO_IRQ_SET_ACTION_UNMASK}: unmask. */
  ACTION_UNMASK: VFIO_IRQ_SET_ACTION_UNMASK,
  /** {@link VFIO_IRQ_SET_ACTION_TRIGGER}: set the trigger eventfds, or trigger (loopback) with NONE/BOOL. */
  ACTION_TRIGGER: VFIO_IRQ_SET_ACTION_TRIGGER,
} as const;

/** vfio-pci IRQ index of legacy INTx (the fixed vfio-pci IRQ indexes are 0–4). */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
/** vfio-pci irq index of MSI. */
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
/** vfio-pci irq index of MSI-X. */
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
/** vfio-pci irq index of the AER error notification (PCIe only). */
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
/** vfio-pci irq index of the device release request. */
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
/** Number of fixed vfio-pci irq indexes. */
export const VFIO_PCI_NUM_IRQS = 5;

// ---- PCI hot reset ---------------------------------------------------------------------

/** Hot-reset info: devices carry iommufd devids instead of group ids (cdev). */
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0;
/** Hot-reset info: every affected device is owned by the caller (cdev). */
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1;
/** Hot-reset info flag names. */
export const HOT_RESET_FLAGS = {
  /** {@link VFIO_PCI_HOT_RESET_FLAG_DEV_ID}: devices carry iommufd devids instead of group ids (cdev). */
  DEV_ID: VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  /** {@link VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED}: every affected device is owned by the caller (cdev). */
  DEV_ID_OWNED: VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
} as const;
/** devid: owned implicitly through the same IOMMU group. */
export const VFIO_PCI_DEVID_OWNED = 0;
/** devid: not owned (`-1` in C, read as the u32 0xffffffff). */
export const VFIO_PCI_DEVID_NOT_OWNED = 0xffff_ffff;

// ---- gfx planes ------------------------------------------------------------------------

/** Gfx plane flag: only ask whether the plane kind is supported. */
export const VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0;
/** Gfx plane flag: the plane is exported as a dma-buf (dmabuf_id). */
export const VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1;
/** Gfx plane flag: the plane lives in a device region (region_index). */
export const VFIO_GFX_PLANE_TYPE_REGION = 1 << 2;
/** Gfx plane flag names. */
export const GFX_PLANE_FLAGS = {
  /** {@link VFIO_GFX_PLANE_TYPE_PROBE}: only ask whether the plane kind is supported. */
  PROBE: VFIO_GFX_PLANE_TYPE_PROBE,
  /** {@link VFIO_GFX_PLANE_TYPE_DMABUF}: the plane is exported as a dma-buf (dmabuf_id). */
  DMABUF: VFIO_GFX_PLANE_TYPE_DMABUF,
  /** {@link VFIO_GFX_PLANE_TYPE_REGION}: the plane lives in a device region (region_index). */
  REGION: VFIO_GFX_PLANE_TYPE_REGION,
} as const;
/** drm_plane_type (include/drm/drm_plane.h, enum drm_plane_type): an overlay plane. */
export const DRM_PLANE_TYPE_OVERLAY = 0;
/** drm_plane_type: the primary plane. */
export const DRM_PLANE_TYPE_PRIMARY = 1;
/** drm_plane_type: the cursor plane. */
export const DRM_PLANE_TYPE_CURSOR = 2;
/** DRM_FORMAT_XRGB8888, fourcc 'XR24'. */
export const DRM_FORMAT_XRGB8888 = 0x3432_5258;

// ---- ioeventfd ---------------------------------------------------------------------------

/** ioeventfd flag: 1-byte write. */
export const VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;
/** ioeventfd flag: 2-byte write. */
export const VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;
/** ioeventfd flag: 4-byte write. */
export const VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;
/** ioeventfd flag: 8-byte write. */
export const VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;
/** All ioeventfd size bits. */
export const VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;

// ---- device features ----------------------------------------------------------------------

/** The feature id occupies the low 16 bits of vfio_device_feature.flags. */
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
/** Device feature op: read the feature into data. */
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
/** Device feature op: write the feature from data. */
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
/** Device feature op: ask whether the feature (and GET/SET) is supported. */
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
/** Feature: SR-IOV VF token (16-byte UUID), SET on a PF. */
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
/** Feature: migration support flags (struct vfio_device_feature_migration). */
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
/** Feature: migration state (struct vfio_device_feature_mig_state). */
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
/** Feature: allow runtime low-power entry. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
/** Feature: low-power entry with a wake-up eventfd. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
/** Feature: leave low power. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
/** Feature: start device DMA dirty logging. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
/** Feature: stop device DMA dirty logging. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
/** Feature: read and clear the device DMA dirty log. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
/** Feature: estimated STOP_COPY data length (struct vfio_device_feature_mig_data_size). */
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
/** Feature: set or clear bus mastering (CDX devices only). */
export const VFIO_DEVICE_FEATURE_BUS_MASTER = 10;
/** BUS_MASTER op (vfio_device_feature_bus_master.op): clear bus mastering. */
export const VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
/** BUS_MASTER op: set bus mastering. */
export const VFIO_DEVICE_FEATURE_SET_MASTER = 1;
/** Device feature ids by name. */
export const DEVICE_FEATURES = {
  /** {@link VFIO_DEVICE_FEATURE_PCI_VF_TOKEN}: SR-IOV VF token (16-byte UUID), SET on a PF. */
  PCI_VF_TOKEN: VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  /** {@link VFIO_DEVICE_FEATURE_MIGRATION}: migration support flags (struct vfio_device_feature_migration). */
  MIGRATION: VFIO_DEVICE_FEATURE_MIGRATION,
  /** {@link VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}: migration state (struct vfio_device_feature_mig_state). */
  MIG_DEVICE_STATE: VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  /** {@link VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY}: allow runtime low-power entry. */
  LOW_POWER_ENTRY: VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  /** {@link VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP}: low-power entry with a wake-up eventfd. */
  LOW_POWER_ENTRY_WITH_WAKEUP: VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  /** {@link VFIO_DEVICE_FEATURE_LOW_POWER_EXIT}: leave low power. */
  LOW_POWER_EXIT: VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  /** {@link VFIO_DEVICE_FEATURE_DMA_LOGGING_START}: start device DMA dirty logging. */
  DMA_LOGGING_START: VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  /** {@link VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP}: stop device DMA dirty logging. */
  DMA_LOGGING_STOP: VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  /** {@link VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT}: read and clear the device DMA dirty log. */
  DMA_LOGGING_REPORT: VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  /** {@link VFIO_DEVICE_FEATURE_MIG_DATA_SIZE}: estimated STOP_COPY data length (struct vfio_device_feature_mig_data_size). */
  MIG_DATA_SIZE: VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  /** {@link VFIO_DEVICE_FEATURE_BUS_MASTER}: set or clear bus mastering (CDX devices only). */
  BUS_MASTER: VFIO_DEVICE_FEATURE_BUS_MASTER,
} as const;

/** Migration flag (vfio_device_feature_migration.flags): STOP_COPY and RESUMING are supported (the base v2 protocol). */
export const VFIO_MIGRATION_STOP_COPY = 1 << 0;
/** Migration flag: RUNNING_P2P is supported. */
export const VFIO_MIGRATION_P2P = 1 << 1;
/** Migration flag: PRE_COPY (and PRE_COPY_P2P with P2P) are supported. */
export const VFIO_MIGRATION_PRE_COPY = 1 << 2;
/** Migration flag names. */
export const MIGRATION_FLAGS = {
  /** {@link VFIO_MIGRATION_STOP_COPY}: STOP_COPY and RESUMING are supported (the base v2 protocol). */
  STOP_COPY: VFIO_MIGRATION_STOP_COPY,
  /** {@link VFIO_MIGRATION_P2P}: RUNNING_P2P is supported. */
  P2P: VFIO_MIGRATION_P2P,
  /** {@link VFIO_MIGRATION_PRE_COPY}: PRE_COPY (and PRE_COPY_P2P with P2P) are supported. */
  PRE_COPY: VFIO_MIGRATION_PRE_COPY,
} as const;

/** Migration state (enum vfio_device_mig_state): a failed transition left the device in error; only a reset leaves it. */
export const VFIO_DEVICE_STATE_ERROR = 0;
/** Migration state: stopped. */
export const VFIO_DEVICE_STATE_STOP = 1;
/** Migration state: running normally. */
export const VFIO_DEVICE_STATE_RUNNING = 2;
/** Migration state: stopped, device state readable from data_fd. */
export const VFIO_DEVICE_STATE_STOP_COPY = 3;
/** Migration state: stopped, loading device state from data_fd. */
export const VFIO_DEVICE_STATE_RESUMING = 4;
/** Migration state: running without initiating P2P DMA. */
export const VFIO_DEVICE_STATE_RUNNING_P2P = 5;
/** Migration state: running while state is streamed out. */
export const VFIO_DEVICE_STATE_PRE_COPY = 6;
/** Migration state: PRE_COPY without initiating P2P DMA. */
export const VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;
/** Migration state names by value. */
export const MIG_STATE_NAMES: readonly string[] = [
  'ERROR',
  'STOP',
  'RUNNING',
  'STOP_COPY',
  'RESUMING',
  'RUNNING_P2P',
  'PRE_COPY',
  'PRE_COPY_P2P',
];

// ---- type1 IOMMU -----------------------------------------------------------------------------

/** Type1 info flag: iova_pgsizes is valid. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** Type1 info flag: the reply carries a capability chain at cap_offset. */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
/** Type1 info flag names. */
export const TYPE1_INFO_FLAGS = {
  /** {@link VFIO_IOMMU_INFO_PGSIZES}: iova_pgsizes is valid. */
  PGSIZES: VFIO_IOMMU_INFO_PGSIZES,
  /** {@link VFIO_IOMMU_INFO_CAPS}: the reply carries a capability chain at cap_offset. */
  CAPS: VFIO_IOMMU_INFO_CAPS,
} as const;
/** Type1 IOMMU-info capability (ids have their own namespace): the usable IOVA ranges. */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** Type1 IOMMU-info capability: dirty page logging support. */
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
/** Type1 IOMMU-info capability: DMA mappings still available. */
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;
/** MAP_DMA flag: the device may read the memory. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** MAP_DMA flag: the device may write the memory. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** MAP_DMA flag: update the vaddr of an invalidated mapping. */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
/** UNMAP_DMA flag: return the dirty bitmap of the range first. */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** UNMAP_DMA flag: unmap everything (iova and size 0). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** UNMAP_DMA flag: invalidate the vaddr only, keep the mapping. */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
/** DIRTY_PAGES flag: start logging. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
/** DIRTY_PAGES flag: stop logging. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
/** DIRTY_PAGES flag: read the bitmap of a range. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

// ---- iommufd -----------------------------------------------------------------------------------

/** iommu_ioas_map flag: map at the given IOVA instead of one the kernel chooses. */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
/** iommu_ioas_map flag: the device may write. */
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
/** iommu_ioas_map flag: the device may read. */
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;
/** iommu_option id: how pinned pages are charged to RLIMIT_MEMLOCK (0 per user, 1 per process; for the whole iommufd). */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
/** iommu_option id: use huge pages in the IOAS (per IOAS, default 1). */
export const IOMMU_OPTION_HUGE_PAGES = 1;
/** iommu_option op: write val64. */
export const IOMMU_OPTION_OP_SET = 0;
/** iommu_option op: read val64. */
export const IOMMU_OPTION_OP_GET = 1;
/** iommu_vfio_ioas op: get the IOAS that the VFIO container compatibility layer uses. */
export const IOMMU_VFIO_IOAS_GET = 0;
/** iommu_vfio_ioas op: set the compat IOAS. */
export const IOMMU_VFIO_IOAS_SET = 1;
/** iommu_vfio_ioas op: clear the compat IOAS. */
export const IOMMU_VFIO_IOAS_CLEAR = 2;
/** iommu_hw_info out_data_type: no driver-specific data. */
export const IOMMU_HW_INFO_TYPE_NONE = 0;
/** iommu_hw_info type: struct iommu_hw_info_vtd. */
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
/** iommu_hw_info out_capabilities bit: the IOMMU can track dirty pages. */
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
/** iommu_hw_info_vtd.flags: Sapphire Rapids erratum 772415 (SPR17). */
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;
/** iommu_hwpt_alloc flag: the HWPT may be the parent of nested HWPTs. */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
/** iommu_hwpt_alloc flag: enforce dirty tracking support. */
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** iommu_hwpt_alloc flag: fault_id is valid (IOPF-capable HWPT). */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** iommu_hwpt_alloc data_type: no data (a plain, unnested HWPT). */
export const IOMMU_HWPT_DATA_NONE = 0;
/** iommu_hwpt_alloc data_type: Intel VT-d stage-1 page table. */
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
/** iommu_hw_info capability names. */
export const HW_INFO_CAPS = {
  /** {@link IOMMU_HW_CAP_DIRTY_TRACKING}: the IOMMU can track dirty pages. */
  DIRTY_TRACKING: IOMMU_HW_CAP_DIRTY_TRACKING,
} as const;
/** iommu_hw_info_vtd flag names. */
export const VTD_INFO_FLAGS = {
  /** {@link IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17}: Sapphire Rapids erratum 772415 (SPR17). */
  ERRATA_772415_SPR17: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
} as const;

// ---- name helpers ------------------------------------------------------------------------------

/** Names of device info flags: `['PCI']`, `['RESET','PCI','CAPS']`; unknown bits as `BIT<n>`. */
export function deviceFlagNames(flags: number): string[] {
  return bitNames(flags, DEVICE_FLAGS);
}

/** Names of region flags: `['READ','WRITE','MMAP']`; unknown bits as `BIT<n>`. */
export function regionFlagNames(flags: number): string[] {
  return bitNames(flags, REGION_FLAGS);
}

/** Names of irq info flags: `['EVENTFD','MASKABLE','AUTOMASKED']`; unknown bits as `BIT<n>`. */
export function irqFlagNames(flags: number): string[] {
  return bitNames(flags, IRQ_FLAGS);
}

const FIXED_REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'] as const;
const IRQ_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'] as const;

const REGION_TYPE_NAMES: Record<number, string> = {
  [VFIO_REGION_TYPE_GFX]: 'GFX',
  [VFIO_REGION_TYPE_CCW]: 'CCW',
  [VFIO_REGION_TYPE_MIGRATION_DEPRECATED]: 'MIGRATION',
};

/** Subtype names keyed by region type (vendor types as PCI_VENDOR_TYPE | vendor). */
const REGION_SUBTYPE_NAMES: Record<number, Record<number, string>> = {
  [VFIO_REGION_TYPE_GFX]: { [VFIO_REGION_SUBTYPE_GFX_EDID]: 'EDID' },
  [VFIO_REGION_TYPE_CCW]: {
    [VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD]: 'ASYNC_CMD',
    [VFIO_REGION_SUBTYPE_CCW_SCHIB]: 'SCHIB',
    [VFIO_REGION_SUBTYPE_CCW_CRW]: 'CRW',
  },
  [VFIO_REGION_TYPE_MIGRATION_DEPRECATED]: { [VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED]: 'DEPRECATED' },
  [(VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x8086) >>> 0]: {
    [VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION]: 'IGD_OPREGION',
    [VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG]: 'IGD_HOST_CFG',
    [VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG]: 'IGD_LPC_CFG',
  },
  [(VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x10de) >>> 0]: { [VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM]: 'NVLINK2_RAM' },
  [(VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1014) >>> 0]: { [VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD]: 'NVLINK2_ATSD' },
};

/**
 * The name of a region type: 'GFX', 'CCW', 'MIGRATION', 'PCI_VENDOR_8086'
 * for vendor types, else 'TYPE<n>'.
 */
export function regionTypeName(type: number): string {
  const t = type >>> 0;
  if (t & VFIO_REGION_TYPE_PCI_VENDOR_TYPE) {
    return `PCI_VENDOR_${(t & VFIO_REGION_TYPE_PCI_VENDOR_MASK).toString(16).padStart(4, '0')}`;
  }
  return REGION_TYPE_NAMES[t] ?? `TYPE${t}`;
}

/**
 * The name of a vfio-pci region: 'BAR0'…'BAR5', 'ROM', 'CONFIG', 'VGA' for
 * the fixed indexes 0-8; for device-specific indexes (≥ 9) the type and
 * subtype of its TYPE capability ('GFX/EDID', 'PCI_VENDOR_8086/IGD_OPREGION',
 * 'GFX/7' for an unknown subtype), or 'REGION<n>' without one.
 *
 * @param typeCap the region's TYPE capability, if any (a decoded cap has `type` and `subtype`)
 */
export function regionName(index: number, typeCap?: { readonly type: number; readonly subtype: number }): string {
  const fixed = FIXED_REGION_NAMES[index];
  if (fixed !== undefined) return fixed;
  if (!typeCap) return `REGION${index}`;
  const type = typeCap.type >>> 0;
  const sub = REGION_SUBTYPE_NAMES[type]?.[typeCap.subtype] ?? String(typeCap.subtype);
  return `${regionTypeName(type)}/${sub}`;
}

/** The name of a vfio-pci irq index: 'INTx', 'MSI', 'MSI-X', 'ERR', 'REQ', else 'IRQ<n>'. */
export function irqName(index: number): string {
  return IRQ_NAMES[index] ?? `IRQ${index}`;
}
