// iommufd (/dev/iommu) and the VFIO device cdev ioctls. As everywhere in the
// seam, every user pointer the kernel sees (user_va, allowed_iovas, data_uptr,
// the dirty bitmap) is native memory, and every length is bounded by it.
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "addon.h"
#include "uapi.h"

namespace vfio {
namespace {

using namespace vfio_uapi;

constexpr uint32_t kMaxRanges = 4096;          // IOVA ranges we will pass or accept
constexpr uint32_t kMaxHwInfo = 4096;          // bytes of hw_info data
constexpr uint64_t kMaxBitmapBytes = 1 << 24;  // dirty bitmap

FdHandle* H(const Napi::CallbackInfo& info, size_t i = 0) { return ArgFd(info, i); }

void Run(Napi::Env env, FdHandle* h, unsigned long req, void* arg, const char* op) {
  int fd = h->Require(env, op);
  if (Ioctl(fd, req, arg) < 0) ThrowErrno(env, errno, "ioctl", op, h->path());
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  uint32_t id = ArgU32(info, 1, "id");
  iommu_destroy d{sizeof(d), id};
  Run(info.Env(), h, IOMMUFD_DESTROY, &d, "IOMMU_DESTROY");
  h->ReleaseAllDma(id, false);  // an IOAS that is gone maps nothing
  return info.Env().Undefined();
}

Napi::Value IoasAlloc(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  uint32_t flags = info.Length() > 1 ? ArgU32(info, 1, "flags") : 0;
  iommu_ioas_alloc a{sizeof(a), flags, 0};
  Run(info.Env(), h, IOAS_ALLOC, &a, "IOMMU_IOAS_ALLOC");
  return Napi::Number::New(info.Env(), a.out_ioas_id);
}

// ioasIovaRanges(h, ioasId, capacity) -> { numIovas, alignment, ranges: Buffer(min(cap, n) * 16) }.
// EMSGSIZE (capacity too small) is not thrown: numIovas says how many there are.
Napi::Value IoasIovaRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t ioas = ArgU32(info, 1, "ioasId");
  uint32_t cap = ArgU32(info, 2, "capacity");
  if (cap > kMaxRanges) ThrowRange(env, "capacity must be at most " + std::to_string(kMaxRanges));
  std::vector<iommu_iova_range> ranges(cap > 0 ? cap : 1);
  iommu_ioas_iova_ranges r{sizeof(r), ioas, cap, 0, reinterpret_cast<uint64_t>(ranges.data()), 0};
  int fd = h->Require(env, "IOMMU_IOAS_IOVA_RANGES");
  if (Ioctl(fd, IOAS_IOVA_RANGES, &r) < 0 && errno != EMSGSIZE) ThrowErrno(env, errno, "ioctl", "IOMMU_IOAS_IOVA_RANGES", h->path());
  Napi::Object out = Napi::Object::New(env);
  out.Set("numIovas", Napi::Number::New(env, r.num_iovas));
  out.Set("alignment", Napi::BigInt::New(env, r.out_iova_alignment));
  out.Set("ranges", CopyOut(env, ranges.data(), sizeof(iommu_iova_range) * std::min(cap, r.num_iovas)));
  return out;
}

// ioasAllowIovas(h, ioasId, ranges: Uint8Array of n * 16 bytes {start, last})
Napi::Value IoasAllowIovas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t ioas = ArgU32(info, 1, "ioasId");
  Bytes b = ArgBytes(info, 2, "ranges");
  if (b.length % sizeof(iommu_iova_range) != 0 || b.length / sizeof(iommu_iova_range) > kMaxRanges) {
    ThrowRange(env, "ranges must be a whole number of 16-byte {start, last} pairs, at most " + std::to_string(kMaxRanges));
  }
  std::vector<uint8_t> copy(b.data, b.data + b.length);
  iommu_ioas_allow_iovas a{sizeof(a), ioas, static_cast<uint32_t>(b.length / sizeof(iommu_iova_range)), 0, reinterpret_cast<uint64_t>(copy.data())};
  Run(env, h, IOAS_ALLOW_IOVAS, &a, "IOMMU_IOAS_ALLOW_IOVAS");
  return env.Undefined();
}

constexpr uint32_t kFixedIova = 1, kWriteable = 2, kReadable = 4;

uint32_t ArgMapFlags(const Napi::CallbackInfo& info, size_t i) {
  uint32_t flags = ArgU32(info, i, "flags");
  if (flags & ~(kFixedIova | kWriteable | kReadable)) ThrowRange(info.Env(), "flags may only contain FIXED_IOVA (1), WRITEABLE (2) and READABLE (4)");
  return flags;
}

// ioasMap(h, flags, ioasId, dmaBuffer, offset, length, iova) -> iova (bigint; chosen by the kernel without FIXED_IOVA)
Napi::Value IoasMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t flags = ArgMapFlags(info, 1);
  uint32_t ioas = ArgU32(info, 2, "ioasId");
  DmaBuffer* b = UnwrapTagged<DmaBuffer>(info, 3, kDmaBufferTag, "DmaBuffer");
  uint64_t offset = ArgU64(info, 4, "offset"), length = ArgU64(info, 5, "length"), iova = ArgU64(info, 6, "iova");
  if (b->freed()) ThrowClosed(env, "DmaBuffer", "");
  if (length == 0 || offset > b->size() || length > b->size() - offset) ThrowRange(env, "offset and length must lie within the DmaBuffer");
  iommu_ioas_map m{sizeof(m), flags, ioas, 0, reinterpret_cast<uint64_t>(b->base() + offset), length, iova};
  Run(env, h, IOAS_MAP, &m, "IOMMU_IOAS_MAP");
  h->dma[{ioas, m.iova}] = FdHandle::DmaEntry{length, b};
  b->Pin();
  return Napi::BigInt::New(env, m.iova);
}

// ioasUnmap(h, ioasId, iova, length) -> bytes unmapped. iova 0 with length 2^64-1 unmaps everything.
Napi::Value IoasUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t ioas = ArgU32(info, 1, "ioasId");
  uint64_t iova = ArgU64(info, 2, "iova"), length = ArgU64(info, 3, "length");
  iommu_ioas_unmap u{sizeof(u), ioas, iova, length};
  Run(env, h, IOAS_UNMAP, &u, "IOMMU_IOAS_UNMAP");
  if (iova == 0 && length == std::numeric_limits<uint64_t>::max()) {
    h->ReleaseAllDma(ioas, false);
  } else {
    uint64_t end = iova + length < iova ? std::numeric_limits<uint64_t>::max() : iova + length;
    h->ReleaseDma(ioas, iova, end);
  }
  return Napi::BigInt::New(env, u.length);
}

// ioasCopy(h, flags, dstIoas, srcIoas, length, dstIova, srcIova) -> dstIova. The source range
// must lie within one mapping made through this fd, whose buffer the copy then pins too.
Napi::Value IoasCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t flags = ArgMapFlags(info, 1);
  uint32_t dst = ArgU32(info, 2, "dstIoasId"), src = ArgU32(info, 3, "srcIoasId");
  uint64_t length = ArgU64(info, 4, "length"), dstIova = ArgU64(info, 5, "dstIova"), srcIova = ArgU64(info, 6, "srcIova");
  DmaBuffer* buffer = nullptr;
  auto it = h->dma.upper_bound({src, srcIova});
  if (it != h->dma.begin()) {
    --it;
    if (it->first.first == src && it->first.second <= srcIova && srcIova - it->first.second + length <= it->second.size && length > 0) buffer = it->second.buffer;
  }
  if (buffer == nullptr) ThrowRange(env, "the source range must lie within one mapping of the source IOAS made through this iommufd");
  iommu_ioas_copy c{sizeof(c), flags, dst, src, length, dstIova, srcIova};
  Run(env, h, IOAS_COPY, &c, "IOMMU_IOAS_COPY");
  h->dma[{dst, c.dst_iova}] = FdHandle::DmaEntry{length, buffer};
  buffer->Pin();
  return Napi::BigInt::New(env, c.dst_iova);
}

// option(h, optionId, op, objectId, val64) -> val64 (bigint)
Napi::Value Option(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  iommu_option o{sizeof(o), ArgU32(info, 1, "optionId"), static_cast<uint16_t>(ArgU32(info, 2, "op")), 0, ArgU32(info, 3, "objectId"), ArgU64(info, 4, "val64")};
  Run(info.Env(), h, IOMMUFD_OPTION, &o, "IOMMU_OPTION");
  return Napi::BigInt::New(info.Env(), o.val64);
}

// vfioIoas(h, op, ioasId) -> ioasId (the compat IOAS for group/container users)
Napi::Value VfioIoas(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  iommu_vfio_ioas v{sizeof(v), ArgU32(info, 2, "ioasId"), static_cast<uint16_t>(ArgU32(info, 1, "op")), 0};
  Run(info.Env(), h, IOMMUFD_VFIO_IOAS, &v, "IOMMU_VFIO_IOAS");
  return Napi::Number::New(info.Env(), v.ioas_id);
}

// getHwInfo(h, devId, dataLen) -> { type, maxPasidLog2, capabilities, dataLen, data }
Napi::Value GetHwInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t dev = ArgU32(info, 1, "devId");
  uint32_t len = ArgU32(info, 2, "dataLen");
  if (len > kMaxHwInfo) ThrowRange(env, "dataLen must be at most " + std::to_string(kMaxHwInfo));
  std::vector<uint8_t> data(len > 0 ? len : 1, 0);
  iommu_hw_info hw{};
  hw.size = sizeof(hw);
  hw.dev_id = dev;
  hw.data_len = len;
  hw.data_uptr = reinterpret_cast<uint64_t>(data.data());
  Run(env, h, GET_HW_INFO, &hw, "IOMMU_GET_HW_INFO");
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", Napi::Number::New(env, hw.out_data_type));
  out.Set("maxPasidLog2", Napi::Number::New(env, hw.out_max_pasid_log2));
  out.Set("capabilities", Napi::BigInt::New(env, hw.out_capabilities));
  out.Set("dataLen", Napi::Number::New(env, hw.data_len));
  out.Set("data", CopyOut(env, data.data(), std::min(len, hw.data_len)));
  return out;
}

// hwptAlloc(h, flags, devId, ptId, dataType, data?) -> hwptId
Napi::Value HwptAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  iommu_hwpt_alloc a{};
  a.size = sizeof(a);
  a.flags = ArgU32(info, 1, "flags");
  a.dev_id = ArgU32(info, 2, "devId");
  a.pt_id = ArgU32(info, 3, "ptId");
  a.data_type = ArgU32(info, 4, "dataType");
  std::vector<uint8_t> data;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    Bytes b = ArgBytes(info, 5, "data");
    if (b.length > kMaxHwInfo) ThrowRange(env, "data is too long");
    data.assign(b.data, b.data + b.length);
    a.data_len = static_cast<uint32_t>(data.size());
    a.data_uptr = data.empty() ? 0 : reinterpret_cast<uint64_t>(data.data());
  }
  Run(env, h, HWPT_ALLOC, &a, "IOMMU_HWPT_ALLOC");
  return Napi::Number::New(env, a.out_hwpt_id);
}

Napi::Value HwptSetDirtyTracking(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  iommu_hwpt_set_dirty_tracking d{sizeof(d), ArgBool(info, 2, "enable") ? 1u : 0u, ArgU32(info, 1, "hwptId"), 0};
  Run(info.Env(), h, HWPT_SET_DIRTY_TRACKING, &d, "IOMMU_HWPT_SET_DIRTY_TRACKING");
  return info.Env().Undefined();
}

// hwptGetDirtyBitmap(h, hwptId, iova, length, pageSize, flags) -> Buffer (one bit per page)
Napi::Value HwptGetDirtyBitmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t hwpt = ArgU32(info, 1, "hwptId");
  uint64_t iova = ArgU64(info, 2, "iova"), length = ArgU64(info, 3, "length"), page = ArgU64(info, 4, "pageSize");
  uint32_t flags = ArgU32(info, 5, "flags");
  if (page == 0 || (page & (page - 1)) != 0) ThrowRange(env, "pageSize must be a power of two");
  uint64_t pages = length / page + (length % page ? 1 : 0);
  uint64_t bytes = (pages + 63) / 64 * 8;
  if (length == 0 || bytes > kMaxBitmapBytes) ThrowRange(env, "length must be non-zero and its bitmap at most 16 MiB");
  std::vector<uint8_t> bitmap(bytes, 0);
  iommu_hwpt_get_dirty_bitmap g{sizeof(g), hwpt, flags, 0, iova, length, page, reinterpret_cast<uint64_t>(bitmap.data())};
  Run(env, h, HWPT_GET_DIRTY_BITMAP, &g, "IOMMU_HWPT_GET_DIRTY_BITMAP");
  return CopyOut(env, bitmap.data(), bitmap.size());
}

// --- the VFIO device cdev ---------------------------------------------------------------
Napi::Value DeviceBindIommufd(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  FdHandle* iommufd = H(info, 1);
  int ifd = iommufd->Require(info.Env(), "VFIO_DEVICE_BIND_IOMMUFD");
  device_bind_iommufd b{sizeof(b), 0, ifd, 0};
  Run(info.Env(), h, DEVICE_BIND_IOMMUFD, &b, "VFIO_DEVICE_BIND_IOMMUFD");
  return Napi::Number::New(info.Env(), b.out_devid);
}

Napi::Value DeviceAttachPt(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  device_attach_iommufd_pt a{sizeof(a), 0, ArgU32(info, 1, "ptId")};
  Run(info.Env(), h, DEVICE_ATTACH_IOMMUFD_PT, &a, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
  return Napi::Number::New(info.Env(), a.pt_id);
}

Napi::Value DeviceDetachPt(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  device_detach_iommufd_pt d{sizeof(d), 0};
  Run(info.Env(), h, DEVICE_DETACH_IOMMUFD_PT, &d, "VFIO_DEVICE_DETACH_IOMMUFD_PT");
  return info.Env().Undefined();
}

}  // namespace

void DefineIommufd(Napi::Env env, Napi::Object exports) {
  DefineFunctions(env, exports, {
      {"iommufdDestroy", Destroy},
      {"ioasAlloc", IoasAlloc},
      {"ioasIovaRanges", IoasIovaRanges},
      {"ioasAllowIovas", IoasAllowIovas},
      {"ioasMap", IoasMap},
      {"ioasUnmap", IoasUnmap},
      {"ioasCopy", IoasCopy},
      {"iommufdOption", Option},
      {"iommufdVfioIoas", VfioIoas},
      {"getHwInfo", GetHwInfo},
      {"hwptAlloc", HwptAlloc},
      {"hwptSetDirtyTracking", HwptSetDirtyTracking},
      {"hwptGetDirtyBitmap", HwptGetDirtyBitmap},
      {"deviceBindIommufd", DeviceBindIommufd},
      {"deviceAttachPt", DeviceAttachPt},
      {"deviceDetachPt", DeviceDetachPt},
  });
}

}  // namespace vfio
