// Our own x86_64 layouts of the VFIO and iommufd uapi structs (Linux 6.12),
// written from ../shared/reference/uapi-6.12-layout.txt. Where the build host's
// <linux/vfio.h> has a struct, its size and every field offset are checked at
// compile time; layouts() exports them so the TypeScript codecs are checked
// against the compiler, and the guest suite checks them against the kernel.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vfio_uapi {

constexpr unsigned long IOCTL(unsigned nr) { return 0x3b00u | nr; }  // _IO(';', nr)

// --- VFIO ioctl requests (vfio.h; _IO so no size is encoded) ---
constexpr unsigned long GET_API_VERSION = IOCTL(100), CHECK_EXTENSION = IOCTL(101), SET_IOMMU = IOCTL(102);
constexpr unsigned long GROUP_GET_STATUS = IOCTL(103), GROUP_SET_CONTAINER = IOCTL(104), GROUP_UNSET_CONTAINER = IOCTL(105),
                        GROUP_GET_DEVICE_FD = IOCTL(106);
constexpr unsigned long DEVICE_GET_INFO = IOCTL(107), DEVICE_GET_REGION_INFO = IOCTL(108), DEVICE_GET_IRQ_INFO = IOCTL(109),
                        DEVICE_SET_IRQS = IOCTL(110), DEVICE_RESET = IOCTL(111), DEVICE_GET_PCI_HOT_RESET_INFO = IOCTL(112),
                        DEVICE_PCI_HOT_RESET = IOCTL(113), DEVICE_QUERY_GFX_PLANE = IOCTL(114), DEVICE_GET_GFX_DMABUF = IOCTL(115),
                        DEVICE_IOEVENTFD = IOCTL(116), DEVICE_FEATURE = IOCTL(117), DEVICE_BIND_IOMMUFD = IOCTL(118),
                        DEVICE_ATTACH_IOMMUFD_PT = IOCTL(119), DEVICE_DETACH_IOMMUFD_PT = IOCTL(120),
                        MIG_GET_PRECOPY_INFO = IOCTL(121);
// VFIO_DEVICE_FEATURE flags and the features whose data the generic call must not carry.
constexpr uint32_t FEATURE_MASK = 0xffff, FEATURE_GET = 1u << 16, FEATURE_SET = 1u << 17, FEATURE_PROBE = 1u << 18;
constexpr uint32_t FEATURE_MIG_DEVICE_STATE = 2, FEATURE_DMA_LOGGING_START = 6, FEATURE_DMA_LOGGING_STOP = 7,
                   FEATURE_DMA_LOGGING_REPORT = 8;
constexpr unsigned long IOMMU_GET_INFO = IOCTL(112), IOMMU_MAP_DMA = IOCTL(113), IOMMU_UNMAP_DMA = IOCTL(114),
                        IOMMU_DIRTY_PAGES = IOCTL(117);
// --- iommufd ---
constexpr unsigned long IOMMUFD_DESTROY = IOCTL(0x80), IOAS_ALLOC = IOCTL(0x81), IOAS_ALLOW_IOVAS = IOCTL(0x82),
                        IOAS_COPY = IOCTL(0x83), IOAS_IOVA_RANGES = IOCTL(0x84), IOAS_MAP = IOCTL(0x85), IOAS_UNMAP = IOCTL(0x86),
                        IOMMUFD_OPTION = IOCTL(0x87), IOMMUFD_VFIO_IOAS = IOCTL(0x88), HWPT_ALLOC = IOCTL(0x89),
                        GET_HW_INFO = IOCTL(0x8a), HWPT_SET_DIRTY_TRACKING = IOCTL(0x8b), HWPT_GET_DIRTY_BITMAP = IOCTL(0x8c);

struct info_cap_header { uint16_t id, version; uint32_t next; };
struct group_status { uint32_t argsz, flags; };
struct device_info { uint32_t argsz, flags, num_regions, num_irqs, cap_offset, pad; };
struct region_info { uint32_t argsz, flags, index, cap_offset; uint64_t size, offset; };
struct irq_info { uint32_t argsz, flags, index, count; };
struct irq_set { uint32_t argsz, flags, index, start, count; uint8_t data[]; };
struct pci_hot_reset_info { uint32_t argsz, flags, count; };
struct pci_hot_reset { uint32_t argsz, flags, count; int32_t group_fds[]; };
struct gfx_plane_info {
  uint32_t argsz, flags, drm_plane_type, drm_format;
  uint64_t drm_format_mod;
  uint32_t width, height, stride, size, x_pos, y_pos, x_hot, y_hot, region_index, reserved;
};
struct device_feature { uint32_t argsz, flags; uint8_t data[]; };
struct device_feature_mig_state { uint32_t device_state; int32_t data_fd; };
struct precopy_info { uint32_t argsz, flags; uint64_t initial_bytes, dirty_bytes; };
struct dma_logging_control { uint64_t page_size; uint32_t num_ranges, reserved; uint64_t ranges; };
struct dma_logging_range { uint64_t iova, length; };
struct dma_logging_report { uint64_t iova, length, page_size, bitmap; };
struct device_ioeventfd { uint32_t argsz, flags; uint64_t offset, data; int32_t fd; uint32_t reserved; };
struct device_bind_iommufd { uint32_t argsz, flags; int32_t iommufd; uint32_t out_devid; };
struct device_attach_iommufd_pt { uint32_t argsz, flags, pt_id; };
struct device_detach_iommufd_pt { uint32_t argsz, flags; };
struct iommu_type1_info { uint32_t argsz, flags; uint64_t iova_pgsizes; uint32_t cap_offset, pad; };
struct iommu_type1_dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct bitmap { uint64_t pgsize, size, data; };
struct iommu_type1_dma_unmap { uint32_t argsz, flags; uint64_t iova, size; };
struct iommu_type1_dirty_bitmap { uint32_t argsz, flags; };
struct iommu_type1_dirty_bitmap_get { uint64_t iova, size; bitmap bm; };

struct iommu_destroy { uint32_t size, id; };
struct iommu_ioas_alloc { uint32_t size, flags, out_ioas_id; };
struct iommu_iova_range { uint64_t start, last; };
struct iommu_ioas_iova_ranges { uint32_t size, ioas_id, num_iovas, reserved; uint64_t allowed_iovas, out_iova_alignment; };
struct iommu_ioas_allow_iovas { uint32_t size, ioas_id, num_iovas, reserved; uint64_t allowed_iovas; };
struct iommu_ioas_map { uint32_t size, flags, ioas_id, reserved; uint64_t user_va, length, iova; };
struct iommu_ioas_copy { uint32_t size, flags, dst_ioas_id, src_ioas_id; uint64_t length, dst_iova, src_iova; };
struct iommu_ioas_unmap { uint32_t size, ioas_id; uint64_t iova, length; };
struct iommu_option { uint32_t size, option_id; uint16_t op, reserved; uint32_t object_id; uint64_t val64; };
struct iommu_vfio_ioas { uint32_t size, ioas_id; uint16_t op, reserved; };
struct iommu_hwpt_alloc { uint32_t size, flags, dev_id, pt_id, out_hwpt_id, reserved, data_type, data_len; uint64_t data_uptr; uint32_t fault_id, reserved2; };
struct iommu_hw_info { uint32_t size, flags, dev_id, data_len; uint64_t data_uptr; uint32_t out_data_type; uint8_t out_max_pasid_log2, reserved[3]; uint64_t out_capabilities; };
struct iommu_hwpt_set_dirty_tracking { uint32_t size, flags, hwpt_id, reserved; };
struct iommu_hwpt_get_dirty_bitmap { uint32_t size, hwpt_id, flags, reserved; uint64_t iova, length, page_size, data; };

// Sizes from the 6.12 layout table, checked whether or not the host header has the struct.
static_assert(sizeof(info_cap_header) == 8);
static_assert(sizeof(group_status) == 8);
static_assert(sizeof(device_info) == 24);
static_assert(sizeof(region_info) == 32);
static_assert(sizeof(irq_info) == 16);
static_assert(sizeof(irq_set) == 20);
static_assert(sizeof(pci_hot_reset_info) == 12);
static_assert(sizeof(pci_hot_reset) == 12);
static_assert(sizeof(gfx_plane_info) == 64 && offsetof(gfx_plane_info, region_index) == 56);
static_assert(sizeof(device_feature) == 8);
static_assert(sizeof(device_feature_mig_state) == 8);
static_assert(sizeof(precopy_info) == 24 && offsetof(precopy_info, dirty_bytes) == 16);
static_assert(sizeof(dma_logging_control) == 24 && offsetof(dma_logging_control, ranges) == 16);
static_assert(sizeof(dma_logging_range) == 16);
static_assert(sizeof(dma_logging_report) == 32 && offsetof(dma_logging_report, bitmap) == 24);
static_assert(sizeof(device_ioeventfd) == 32);
static_assert(sizeof(device_bind_iommufd) == 16);
static_assert(sizeof(device_attach_iommufd_pt) == 12);
static_assert(sizeof(device_detach_iommufd_pt) == 8);
static_assert(sizeof(iommu_type1_info) == 24);
static_assert(sizeof(iommu_type1_dma_map) == 32);
static_assert(sizeof(bitmap) == 24);
static_assert(sizeof(iommu_type1_dma_unmap) == 24);
static_assert(sizeof(iommu_type1_dirty_bitmap_get) == 40);
static_assert(sizeof(iommu_destroy) == 8);
static_assert(sizeof(iommu_ioas_alloc) == 12);
static_assert(sizeof(iommu_iova_range) == 16);
static_assert(sizeof(iommu_ioas_iova_ranges) == 32 && offsetof(iommu_ioas_iova_ranges, out_iova_alignment) == 24);
static_assert(sizeof(iommu_ioas_allow_iovas) == 24);
static_assert(sizeof(iommu_ioas_map) == 40 && offsetof(iommu_ioas_map, user_va) == 16 && offsetof(iommu_ioas_map, iova) == 32);
static_assert(sizeof(iommu_ioas_copy) == 40);
static_assert(sizeof(iommu_ioas_unmap) == 24);
static_assert(sizeof(iommu_option) == 24 && offsetof(iommu_option, op) == 8 && offsetof(iommu_option, object_id) == 12);
static_assert(sizeof(iommu_vfio_ioas) == 12);
static_assert(sizeof(iommu_hwpt_alloc) == 48 && offsetof(iommu_hwpt_alloc, data_uptr) == 32 && offsetof(iommu_hwpt_alloc, fault_id) == 40);
static_assert(sizeof(iommu_hw_info) == 40 && offsetof(iommu_hw_info, out_data_type) == 24 && offsetof(iommu_hw_info, out_max_pasid_log2) == 28 &&
              offsetof(iommu_hw_info, out_capabilities) == 32);
static_assert(sizeof(iommu_hwpt_set_dirty_tracking) == 16);
static_assert(sizeof(iommu_hwpt_get_dirty_bitmap) == 48);

}  // namespace vfio_uapi
