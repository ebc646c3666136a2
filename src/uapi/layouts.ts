/**
 * Struct sizes and field offsets of the VFIO and iommufd uapi (Linux 6.12,
 * x86_64), transcribed from `uapi-6.12-layout.txt` (compiled from the kernel
 * headers). Offsets the layout file does not list (e.g. `argsz` at 0, the
 * capability `header` at 0, reserved words) are taken from the struct
 * definitions in include/uapi/linux/vfio.h and iommufd.h of the same tree.
 *
 * Every codec in `src/uapi` reads its offsets from this table; nothing else
 * hard-codes an offset. A separate test compares the table with the native
 * addon's compiler-computed `offsetof`/`sizeof`, so names are exactly the
 * kernel's (including `__reserved` and both members of a union).
 */

/** The size of one struct and the byte offset of each named member. */
export interface StructLayout {
  /** `sizeof(struct …)`; for a struct ending in a flexible array, without the array. */
  readonly size: number;
  /** `offsetof(struct …, member)` for each member listed. */
  readonly fields: Readonly<Record<string, number>>;
}

/**
 * Every uapi struct this package encodes or decodes, by its kernel name
 * (`vfio_region_info`, `iommu_ioas_map`, …). Read it through
 * {@link sizeOf} and {@link offsetOf}.
 *
 * @internal
 */
export const LAYOUTS = {
  // ---- vfio.h: common ------------------------------------------------------
  vfio_info_cap_header: { size: 8, fields: { id: 0, version: 2, next: 4 } },
  vfio_group_status: { size: 8, fields: { argsz: 0, flags: 4 } },
  vfio_device_info: {
    size: 24,
    fields: { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16, pad: 20 },
  },
  vfio_device_info_cap_pci_atomic_comp: { size: 16, fields: { header: 0, flags: 8, reserved: 12 } },
  vfio_region_info: {
    size: 32,
    fields: { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 },
  },
  vfio_region_sparse_mmap_area: { size: 16, fields: { offset: 0, size: 8 } },
  vfio_region_info_cap_sparse_mmap: { size: 16, fields: { header: 0, nr_areas: 8, reserved: 12, areas: 16 } },
  vfio_region_info_cap_type: { size: 16, fields: { header: 0, type: 8, subtype: 12 } },
  vfio_region_gfx_edid: {
    size: 24,
    fields: { edid_offset: 0, edid_max_size: 4, edid_size: 8, max_xres: 12, max_yres: 16, link_state: 20 },
  },
  vfio_irq_info: { size: 16, fields: { argsz: 0, flags: 4, index: 8, count: 12 } },
  vfio_irq_set: { size: 20, fields: { argsz: 0, flags: 4, index: 8, start: 12, count: 16, data: 20 } },
  vfio_pci_dependent_device: { size: 8, fields: { group_id: 0, devid: 0, segment: 4, bus: 6, devfn: 7 } },
  vfio_pci_hot_reset_info: { size: 12, fields: { argsz: 0, flags: 4, count: 8, devices: 12 } },
  vfio_pci_hot_reset: { size: 12, fields: { argsz: 0, flags: 4, count: 8, group_fds: 12 } },
  vfio_device_gfx_plane_info: {
    size: 64,
    fields: {
      argsz: 0,
      flags: 4,
      drm_plane_type: 8,
      drm_format: 12,
      drm_format_mod: 16,
      width: 24,
      height: 28,
      stride: 32,
      size: 36,
      x_pos: 40,
      y_pos: 44,
      x_hot: 48,
      y_hot: 52,
      region_index: 56,
      dmabuf_id: 56,
      reserved: 60,
    },
  },
  vfio_device_ioeventfd: { size: 32, fields: { argsz: 0, flags: 4, offset: 8, data: 16, fd: 24, reserved: 28 } },
  vfio_device_feature: { size: 8, fields: { argsz: 0, flags: 4, data: 8 } },
  vfio_device_bind_iommufd: { size: 16, fields: { argsz: 0, flags: 4, iommufd: 8, out_devid: 12 } },
  vfio_device_attach_iommufd_pt: { size: 12, fields: { argsz: 0, flags: 4, pt_id: 8 } },
  vfio_device_detach_iommufd_pt: { size: 8, fields: { argsz: 0, flags: 4 } },
  vfio_device_feature_migration: { size: 8, fields: { flags: 0 } },
  vfio_device_feature_mig_state: { size: 8, fields: { device_state: 0, data_fd: 4 } },
  vfio_precopy_info: { size: 24, fields: { argsz: 0, flags: 4, initial_bytes: 8, dirty_bytes: 16 } },
  vfio_device_low_power_entry_with_wakeup: { size: 8, fields: { wakeup_eventfd: 0, reserved: 4 } },
  vfio_device_feature_dma_logging_control: {
    size: 24,
    fields: { page_size: 0, num_ranges: 8, __reserved: 12, ranges: 16 },
  },
  vfio_device_feature_dma_logging_range: { size: 16, fields: { iova: 0, length: 8 } },
  vfio_device_feature_dma_logging_report: { size: 32, fields: { iova: 0, length: 8, page_size: 16, bitmap: 24 } },
  vfio_device_feature_mig_data_size: { size: 8, fields: { stop_copy_length: 0 } },
  vfio_device_feature_bus_master: { size: 4, fields: { op: 0 } },

  // ---- vfio.h: type1 IOMMU ---------------------------------------------------
  vfio_iommu_type1_info: { size: 24, fields: { argsz: 0, flags: 4, iova_pgsizes: 8, cap_offset: 16, pad: 20 } },
  vfio_iova_range: { size: 16, fields: { start: 0, end: 8 } },
  vfio_iommu_type1_info_cap_iova_range: {
    size: 16,
    fields: { header: 0, nr_iovas: 8, reserved: 12, iova_ranges: 16 },
  },
  vfio_iommu_type1_info_cap_migration: {
    size: 32,
    fields: { header: 0, flags: 8, pgsize_bitmap: 16, max_dirty_bitmap_size: 24 },
  },
  vfio_iommu_type1_info_dma_avail: { size: 12, fields: { header: 0, avail: 8 } },
  vfio_iommu_type1_dma_map: { size: 32, fields: { argsz: 0, flags: 4, vaddr: 8, iova: 16, size: 24 } },
  vfio_bitmap: { size: 24, fields: { pgsize: 0, size: 8, data: 16 } },
  vfio_iommu_type1_dma_unmap: { size: 24, fields: { argsz: 0, flags: 4, iova: 8, size: 16, data: 24 } },
  vfio_iommu_type1_dirty_bitmap: { size: 8, fields: { argsz: 0, flags: 4, data: 8 } },
  vfio_iommu_type1_dirty_bitmap_get: { size: 40, fields: { iova: 0, size: 8, bitmap: 16 } },

  // ---- iommufd.h --------------------------------------------------------------
  iommu_destroy: { size: 8, fields: { size: 0, id: 4 } },
  iommu_ioas_alloc: { size: 12, fields: { size: 0, flags: 4, out_ioas_id: 8 } },
  iommu_iova_range: { size: 16, fields: { start: 0, last: 8 } },
  iommu_ioas_iova_ranges: {
    size: 32,
    fields: { size: 0, ioas_id: 4, num_iovas: 8, __reserved: 12, allowed_iovas: 16, out_iova_alignment: 24 },
  },
  iommu_ioas_allow_iovas: {
    size: 24,
    fields: { size: 0, ioas_id: 4, num_iovas: 8, __reserved: 12, allowed_iovas: 16 },
  },
  iommu_ioas_map: {
    size: 40,
    fields: { size: 0, flags: 4, ioas_id: 8, __reserved: 12, user_va: 16, length: 24, iova: 32 },
  },
  iommu_ioas_copy: {
    size: 40,
    fields: { size: 0, flags: 4, dst_ioas_id: 8, src_ioas_id: 12, length: 16, dst_iova: 24, src_iova: 32 },
  },
  iommu_ioas_unmap: { size: 24, fields: { size: 0, ioas_id: 4, iova: 8, length: 16 } },
  iommu_option: {
    size: 24,
    fields: { size: 0, option_id: 4, op: 8, __reserved: 10, object_id: 12, val64: 16 },
  },
  iommu_vfio_ioas: { size: 12, fields: { size: 0, ioas_id: 4, op: 8, __reserved: 10 } },
  iommu_hwpt_alloc: {
    size: 48,
    fields: {
      size: 0,
      flags: 4,
      dev_id: 8,
      pt_id: 12,
      out_hwpt_id: 16,
      __reserved: 20,
      data_type: 24,
      data_len: 28,
      data_uptr: 32,
      fault_id: 40,
      __reserved2: 44,
    },
  },
  iommu_hw_info: {
    size: 40,
    fields: {
      size: 0,
      flags: 4,
      dev_id: 8,
      data_len: 12,
      data_uptr: 16,
      out_data_type: 24,
      out_max_pasid_log2: 28,
      __reserved: 29,
      out_capabilities: 32,
    },
  },
  iommu_hw_info_vtd: { size: 24, fields: { flags: 0, __reserved: 4, cap_reg: 8, ecap_reg: 16 } },
  iommu_hwpt_vtd_s1: { size: 24, fields: { flags: 0, pgtbl_addr: 8, addr_width: 16, __reserved: 20 } },
  iommu_hwpt_set_dirty_tracking: { size: 16, fields: { size: 0, flags: 4, hwpt_id: 8, __reserved: 12 } },
  iommu_hwpt_get_dirty_bitmap: {
    size: 48,
    fields: { size: 0, hwpt_id: 4, flags: 8, __reserved: 12, iova: 16, length: 24, page_size: 32, data: 40 },
  },
  iommu_hwpt_invalidate: {
    size: 32,
    fields: { size: 0, hwpt_id: 4, data_uptr: 8, data_type: 16, entry_len: 20, entry_num: 24, __reserved: 28 },
  },
  iommu_hwpt_vtd_s1_invalidate: { size: 24, fields: { addr: 0, npages: 8, flags: 16, __reserved: 20 } },
  iommu_hwpt_pgfault: {
    size: 40,
    fields: { flags: 0, dev_id: 4, pasid: 8, grpid: 12, perm: 16, addr: 24, length: 32, cookie: 36 },
  },
  iommu_hwpt_page_response: { size: 8, fields: { cookie: 0, code: 4 } },
  iommu_fault_alloc: { size: 16, fields: { size: 0, flags: 4, out_fault_id: 8, out_fault_fd: 12 } },
} as const satisfies Record<string, StructLayout>;

/**
 * The kernel name of a VFIO or iommufd uapi struct this package knows the
 * layout of: `'vfio_region_info'`, `'vfio_irq_set'`, `'iommu_ioas_map'`, …
 *
 * @useDeclaredType
 */
export type StructName = keyof typeof LAYOUTS;

/** The member names of one struct, as the kernel spells them (`'argsz'`, `'cap_offset'`, `'__reserved'`, …). */
export type FieldName<S extends StructName> = keyof (typeof LAYOUTS)[S]['fields'] & string;

/**
 * `sizeof(struct s)` on Linux 6.12 x86_64; for a struct ending in a flexible
 * array, without the array.
 *
 * @param struct - the struct's kernel name, e.g. `'vfio_region_info'` (32)
 */
export function sizeOf(struct: StructName): number {
  return LAYOUTS[struct].size;
}

/**
 * `offsetof(struct s, field)` on Linux 6.12 x86_64.
 *
 * @param struct - the struct's kernel name, e.g. `'vfio_region_info'`
 * @param field - the member's kernel name, e.g. `'cap_offset'` (12)
 */
export function offsetOf<S extends StructName>(struct: S, field: FieldName<S>): number {
  return (LAYOUTS[struct].fields as Record<string, number>)[field] as number;
}
