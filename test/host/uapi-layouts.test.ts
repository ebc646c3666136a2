import { describe, expect, it } from 'vitest';
import * as uapi from '../../src/uapi/index.js';
import { LAYOUTS, offsetOf, sizeOf } from '../../src/uapi/index.js';

describe('LAYOUTS', () => {
  it('matches spot values of uapi-6.12-layout.txt', () => {
    // sizes copied by hand from the layout file
    const sizes: Record<string, number> = {
      vfio_info_cap_header: 8,
      vfio_device_info: 24,
      vfio_region_info: 32,
      vfio_region_info_cap_sparse_mmap: 16,
      vfio_region_gfx_edid: 24,
      vfio_irq_set: 20,
      vfio_pci_hot_reset_info: 12,
      vfio_device_gfx_plane_info: 64,
      vfio_device_feature: 8,
      vfio_iommu_type1_info: 24,
      vfio_iommu_type1_info_cap_migration: 32,
      vfio_iommu_type1_info_dma_avail: 12,
      vfio_iommu_type1_dma_map: 32,
      iommu_ioas_iova_ranges: 32,
      iommu_ioas_map: 40,
      iommu_option: 24,
      iommu_hwpt_alloc: 48,
      iommu_hw_info: 40,
      iommu_hw_info_vtd: 24,
      iommu_fault_alloc: 16,
    };
    for (const [name, size] of Object.entries(sizes)) expect(sizeOf(name as keyof typeof LAYOUTS), name).toBe(size);
    expect(offsetOf('vfio_region_info', 'size')).toBe(16);
    expect(offsetOf('vfio_region_info', 'offset')).toBe(24);
    expect(offsetOf('vfio_device_gfx_plane_info', 'drm_format_mod')).toBe(16);
    expect(offsetOf('vfio_device_gfx_plane_info', 'region_index')).toBe(56);
    expect(offsetOf('vfio_device_gfx_plane_info', 'dmabuf_id')).toBe(56);
    expect(offsetOf('vfio_iommu_type1_info', 'cap_offset')).toBe(16);
    expect(offsetOf('vfio_iommu_type1_info_cap_migration', 'max_dirty_bitmap_size')).toBe(24);
    expect(offsetOf('vfio_irq_set', 'data')).toBe(20);
    expect(offsetOf('iommu_hw_info', 'out_max_pasid_log2')).toBe(28);
    expect(offsetOf('iommu_hw_info', 'out_capabilities')).toBe(32);
    expect(offsetOf('iommu_option', 'val64')).toBe(16);
    expect(offsetOf('iommu_ioas_map', 'iova')).toBe(32);
  });

  it('lists every struct of the layout file', () => {
    const names = `vfio_info_cap_header vfio_group_status vfio_device_info vfio_device_info_cap_pci_atomic_comp
      vfio_region_info vfio_region_sparse_mmap_area vfio_region_info_cap_sparse_mmap vfio_region_info_cap_type
      vfio_region_gfx_edid vfio_irq_info vfio_irq_set vfio_pci_dependent_device vfio_pci_hot_reset_info
      vfio_pci_hot_reset vfio_device_gfx_plane_info vfio_device_ioeventfd vfio_device_feature
      vfio_device_bind_iommufd vfio_device_attach_iommufd_pt vfio_device_detach_iommufd_pt
      vfio_device_feature_migration vfio_device_feature_mig_state vfio_precopy_info
      vfio_device_low_power_entry_with_wakeup vfio_device_feature_dma_logging_control
      vfio_device_feature_dma_logging_range vfio_device_feature_dma_logging_report
      vfio_device_feature_mig_data_size vfio_device_feature_bus_master vfio_iommu_type1_info vfio_iova_range
      vfio_iommu_type1_info_cap_iova_range vfio_iommu_type1_info_cap_migration vfio_iommu_type1_info_dma_avail
      vfio_iommu_type1_dma_map vfio_bitmap vfio_iommu_type1_dma_unmap vfio_iommu_type1_dirty_bitmap
      vfio_iommu_type1_dirty_bitmap_get iommu_destroy iommu_ioas_alloc iommu_iova_range iommu_ioas_iova_ranges
      iommu_ioas_allow_iovas iommu_ioas_map iommu_ioas_copy iommu_ioas_unmap iommu_option iommu_vfio_ioas
      iommu_hwpt_alloc iommu_hw_info iommu_hw_info_vtd iommu_hwpt_vtd_s1 iommu_hwpt_set_dirty_tracking
      iommu_hwpt_get_dirty_bitmap iommu_hwpt_invalidate iommu_hwpt_vtd_s1_invalidate iommu_hwpt_pgfault
      iommu_hwpt_page_response iommu_fault_alloc`
      .split(/\s+/)
      .filter(Boolean);
    expect(Object.keys(LAYOUTS).sort()).toEqual([...names].sort());
  });

  it('every field lies inside its struct (flexible arrays exactly at the end)', () => {
    for (const [name, layout] of Object.entries(LAYOUTS)) {
      for (const [field, off] of Object.entries(layout.fields as Record<string, number>)) {
        expect(Number.isInteger(off) && off >= 0 && off <= layout.size, `${name}.${field}`).toBe(true);
      }
      expect(layout.size % 4, name).toBe(0);
    }
  });
});

describe('ioctl numbers', () => {
  it('are _IO(";", nr) = 0x3b00 | nr with the numbers of the layout file', () => {
    const nr: Record<string, number> = {
      VFIO_GET_API_VERSION: 100,
      VFIO_CHECK_EXTENSION: 101,
      VFIO_SET_IOMMU: 102,
      VFIO_GROUP_GET_STATUS: 103,
      VFIO_GROUP_SET_CONTAINER: 104,
      VFIO_GROUP_UNSET_CONTAINER: 105,
      VFIO_GROUP_GET_DEVICE_FD: 106,
      VFIO_DEVICE_GET_INFO: 107,
      VFIO_DEVICE_GET_REGION_INFO: 108,
      VFIO_DEVICE_GET_IRQ_INFO: 109,
      VFIO_DEVICE_SET_IRQS: 110,
      VFIO_DEVICE_RESET: 111,
      VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: 112,
      VFIO_DEVICE_PCI_HOT_RESET: 113,
      VFIO_DEVICE_QUERY_GFX_PLANE: 114,
      VFIO_DEVICE_GET_GFX_DMABUF: 115,
      VFIO_DEVICE_IOEVENTFD: 116,
      VFIO_DEVICE_FEATURE: 117,
      VFIO_DEVICE_BIND_IOMMUFD: 118,
      VFIO_DEVICE_ATTACH_IOMMUFD_PT: 119,
      VFIO_DEVICE_DETACH_IOMMUFD_PT: 120,
      VFIO_MIG_GET_PRECOPY_INFO: 121,
      VFIO_IOMMU_GET_INFO: 112,
      VFIO_IOMMU_MAP_DMA: 113,
      VFIO_IOMMU_UNMAP_DMA: 114,
      VFIO_IOMMU_ENABLE: 115,
      VFIO_IOMMU_DISABLE: 116,
      VFIO_IOMMU_DIRTY_PAGES: 117,
      IOMMU_DESTROY: 128,
      IOMMU_IOAS_ALLOC: 129,
      IOMMU_IOAS_ALLOW_IOVAS: 130,
      IOMMU_IOAS_COPY: 131,
      IOMMU_IOAS_IOVA_RANGES: 132,
      IOMMU_IOAS_MAP: 133,
      IOMMU_IOAS_UNMAP: 134,
      IOMMU_OPTION: 135,
      IOMMU_VFIO_IOAS: 136,
      IOMMU_HWPT_ALLOC: 137,
      IOMMU_GET_HW_INFO: 138,
      IOMMU_HWPT_SET_DIRTY_TRACKING: 139,
      IOMMU_HWPT_GET_DIRTY_BITMAP: 140,
      IOMMU_HWPT_INVALIDATE: 141,
      IOMMU_FAULT_QUEUE_ALLOC: 142,
    };
    const all = uapi as unknown as Record<string, number>;
    for (const [name, n] of Object.entries(nr)) expect(all[name], name).toBe(0x3b00 | n);
    expect(uapi.VFIO_DEVICE_GET_REGION_INFO).toBe(0x3b6c);
    expect(uapi.IOMMU_IOAS_MAP).toBe(0x3b85);
  });

  it('extension, flag and index constants', () => {
    expect(uapi.VFIO_EXTENSIONS).toEqual({
      TYPE1: 1,
      SPAPR_TCE: 2,
      TYPE1v2: 3,
      DMA_CC: 4,
      EEH: 5,
      TYPE1_NESTING: 6,
      SPAPR_TCE_v2: 7,
      NOIOMMU: 8,
      UNMAP_ALL: 9,
      UPDATE_VADDR: 10,
    });
    expect(uapi.VFIO_DEVICE_FLAGS_CAPS).toBe(0x80);
    expect(uapi.VFIO_REGION_INFO_FLAG_CAPS).toBe(0x8);
    expect(uapi.VFIO_IRQ_SET_ACTION_TRIGGER).toBe(0x20);
    expect(uapi.VFIO_DEVICE_FEATURE_PROBE).toBe(0x40000);
    expect(uapi.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE).toBe(9);
    expect(uapi.VFIO_DEVICE_STATE_PRE_COPY_P2P).toBe(7);
    expect(uapi.VFIO_PCI_CONFIG_REGION_INDEX).toBe(7);
    expect(uapi.VFIO_PCI_NUM_REGIONS).toBe(9);
    expect(uapi.VFIO_PCI_REQ_IRQ_INDEX).toBe(4);
    expect(uapi.VFIO_REGION_TYPE_PCI_VENDOR_TYPE).toBe(0x80000000);
    expect(uapi.IOMMU_IOAS_MAP_READABLE).toBe(4);
    expect(uapi.IOMMU_OPTION_HUGE_PAGES).toBe(1);
  });
});
