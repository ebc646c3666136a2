// Compile-time check of our layouts against the build host's <linux/vfio.h>
// (6.1 on Debian 12: it lacks the cdev and iommufd parts, which are checked
// against the 6.12 numbers in uapi.h and at run time in the guest).
#include <linux/vfio.h>
#include "uapi.h"

#define SAME_SIZE(ours, theirs) static_assert(sizeof(vfio_uapi::ours) == sizeof(struct theirs), #ours " size differs from " #theirs)
// 6.12 grew the struct at the end (6.1 has no trailing pad): the host's must be a prefix of ours.
#define SAME_PREFIX(ours, theirs) static_assert(sizeof(vfio_uapi::ours) >= sizeof(struct theirs), #theirs " is larger than ours")
#define SAME_OFF(ours, theirs, f) \
  static_assert(offsetof(vfio_uapi::ours, f) == offsetof(struct theirs, f), #ours "." #f " offset differs from " #theirs)
#define SAME_OFF2(ours, f1, theirs, f2) \
  static_assert(offsetof(vfio_uapi::ours, f1) == offsetof(struct theirs, f2), #ours "." #f1 " offset differs from " #theirs "." #f2)

SAME_SIZE(info_cap_header, vfio_info_cap_header);
SAME_OFF(info_cap_header, vfio_info_cap_header, next);
SAME_SIZE(group_status, vfio_group_status);
SAME_PREFIX(device_info, vfio_device_info);  // 6.1: 20 bytes, 6.12: 24 (pad)
SAME_OFF(device_info, vfio_device_info, num_regions);
SAME_OFF(device_info, vfio_device_info, num_irqs);
SAME_OFF(device_info, vfio_device_info, cap_offset);
SAME_SIZE(region_info, vfio_region_info);
SAME_OFF(region_info, vfio_region_info, index);
SAME_OFF(region_info, vfio_region_info, cap_offset);
SAME_OFF(region_info, vfio_region_info, size);
SAME_OFF(region_info, vfio_region_info, offset);
SAME_SIZE(irq_info, vfio_irq_info);
SAME_OFF(irq_info, vfio_irq_info, index);
SAME_OFF(irq_info, vfio_irq_info, count);
SAME_SIZE(irq_set, vfio_irq_set);
SAME_OFF(irq_set, vfio_irq_set, start);
SAME_OFF(irq_set, vfio_irq_set, count);
SAME_OFF(irq_set, vfio_irq_set, data);
SAME_SIZE(pci_hot_reset_info, vfio_pci_hot_reset_info);
SAME_SIZE(pci_hot_reset, vfio_pci_hot_reset);
SAME_OFF(pci_hot_reset, vfio_pci_hot_reset, group_fds);
SAME_SIZE(gfx_plane_info, vfio_device_gfx_plane_info);
SAME_OFF(gfx_plane_info, vfio_device_gfx_plane_info, drm_format_mod);
SAME_OFF(gfx_plane_info, vfio_device_gfx_plane_info, stride);
SAME_OFF(gfx_plane_info, vfio_device_gfx_plane_info, size);
SAME_OFF(gfx_plane_info, vfio_device_gfx_plane_info, y_hot);
SAME_OFF2(gfx_plane_info, region_index, vfio_device_gfx_plane_info, dmabuf_id);
SAME_SIZE(device_feature, vfio_device_feature);
SAME_OFF(device_feature, vfio_device_feature, data);
SAME_SIZE(device_ioeventfd, vfio_device_ioeventfd);
SAME_OFF(device_ioeventfd, vfio_device_ioeventfd, data);
SAME_OFF(device_ioeventfd, vfio_device_ioeventfd, fd);
SAME_SIZE(iommu_type1_info, vfio_iommu_type1_info);
SAME_OFF(iommu_type1_info, vfio_iommu_type1_info, iova_pgsizes);
SAME_OFF(iommu_type1_info, vfio_iommu_type1_info, cap_offset);
SAME_SIZE(iommu_type1_dma_map, vfio_iommu_type1_dma_map);
SAME_OFF(iommu_type1_dma_map, vfio_iommu_type1_dma_map, vaddr);
SAME_OFF(iommu_type1_dma_map, vfio_iommu_type1_dma_map, iova);
SAME_OFF(iommu_type1_dma_map, vfio_iommu_type1_dma_map, size);
SAME_SIZE(bitmap, vfio_bitmap);
SAME_SIZE(iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap);
SAME_OFF(iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, iova);
SAME_OFF(iommu_type1_dma_unmap, vfio_iommu_type1_dma_unmap, size);
SAME_SIZE(iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dirty_bitmap_get);

static_assert(VFIO_DEVICE_GET_REGION_INFO == vfio_uapi::DEVICE_GET_REGION_INFO);
static_assert(VFIO_DEVICE_SET_IRQS == vfio_uapi::DEVICE_SET_IRQS);
static_assert(VFIO_DEVICE_FEATURE == vfio_uapi::DEVICE_FEATURE);
static_assert(VFIO_IOMMU_MAP_DMA == vfio_uapi::IOMMU_MAP_DMA);
static_assert(VFIO_DEVICE_GET_GFX_DMABUF == vfio_uapi::DEVICE_GET_GFX_DMABUF);
static_assert(VFIO_GROUP_GET_DEVICE_FD == vfio_uapi::GROUP_GET_DEVICE_FD);
#ifdef VFIO_DEVICE_BIND_IOMMUFD
static_assert(VFIO_DEVICE_BIND_IOMMUFD == vfio_uapi::DEVICE_BIND_IOMMUFD);
#endif
