// One small function per ioctl. Each allocates the struct the kernel sees in
// native memory, bounded by its own length, and hands TypeScript a copy of the
// raw bytes to decode; pointer fields are only ever filled from native memory.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "addon.h"
#include "uapi.h"

namespace vfio {
namespace {

using namespace vfio_uapi;

// Bound on any argsz we allocate for an info ioctl (capability chains are small).
constexpr uint32_t kMaxArgsz = 1 << 16;

FdHandle* H(const Napi::CallbackInfo& info) { return ArgFd(info, 0); }

uint32_t ArgArgsz(const Napi::CallbackInfo& info, size_t i, uint32_t min, uint32_t max = kMaxArgsz) {
  uint32_t argsz = ArgU32(info, i, "argsz");
  if (argsz < min || argsz > max) ThrowRange(info.Env(), "argsz must be between " + std::to_string(min) + " and " + std::to_string(max));
  return argsz;
}

// An in/out struct given by TypeScript as bytes whose leading u32 must equal its length.
std::vector<uint8_t> ArgStruct(const Napi::CallbackInfo& info, size_t i, size_t min, const char* name) {
  Bytes b = ArgBytes(info, i, name);
  if (b.length < min || b.length > kMaxArgsz) ThrowRange(info.Env(), std::string(name) + " must be " + std::to_string(min) + ".." + std::to_string(kMaxArgsz) + " bytes");
  uint32_t argsz;
  memcpy(&argsz, b.data, 4);
  if (argsz != b.length) ThrowRange(info.Env(), std::string(name) + ": its argsz field (" + std::to_string(argsz) + ") must equal its length (" + std::to_string(b.length) + ")");
  return std::vector<uint8_t>(b.data, b.data + b.length);
}

// Runs `request` on a zeroed native buffer of `argsz` bytes whose leading u32 is argsz,
// after `fill` writes the inputs; returns a copy of the whole buffer.
// Where an INFO reply goes. Argument `i` is either the argsz (a new Buffer of
// that many bytes is returned) or, on hot paths, the caller's Uint8Array, whose
// length is the argsz: the reply is copied into it and its length returned, so
// no Buffer is made per call (napi's Buffer copy costs more than the ioctl).
// Either way the kernel writes native memory only, and the length is bounded.
// Absent, the argsz is `min` (fixed-size structs).
struct Reply {
  uint32_t argsz;
  Bytes out;  // data == nullptr: return a new Buffer
};
Reply ArgReply(const Napi::CallbackInfo& info, size_t i, uint32_t min, uint32_t max) {
  Napi::Value v = info[i];
  if (v.IsUndefined() && min == max) return Reply{min, Bytes{nullptr, 0}};
  if (!v.IsTypedArray()) return Reply{ArgArgsz(info, i, min, max), Bytes{nullptr, 0}};
  Bytes b = ArgBytes(info, i, "reply");
  if (b.length < min || b.length > max) ThrowRange(info.Env(), "reply must be " + std::to_string(min) + ".." + std::to_string(max) + " bytes");
  return Reply{static_cast<uint32_t>(b.length), b};
}

// An ioctl whose struct starts with argsz and is filled in by the kernel, called
// after `fill` writes the inputs.
template <typename Fill>
Napi::Value InfoIoctl(const Napi::CallbackInfo& info, unsigned long request, const char* op, Reply reply, Fill fill) {
  FdHandle* h = H(info);
  int fd = h->Require(info.Env(), op);
  uint32_t argsz = reply.argsz;
  uint8_t small[256];
  std::vector<uint8_t> big;
  uint8_t* buf = small;
  if (argsz > sizeof(small)) {
    big.resize(argsz);
    buf = big.data();
  }
  memset(buf, 0, argsz);
  memcpy(buf, &argsz, 4);
  fill(buf);
  if (Ioctl(fd, request, buf) < 0) ThrowErrno(info.Env(), errno, "ioctl", op, h->path());
  if (reply.out.data == nullptr) return CopyOut(info.Env(), buf, argsz);
  memcpy(reply.out.data, buf, argsz);
  return Napi::Number::New(info.Env(), argsz);
}

Napi::Value SimpleIoctl(const Napi::CallbackInfo& info, unsigned long request, const char* op, unsigned long arg) {
  FdHandle* h = H(info);
  int fd = h->Require(info.Env(), op);
  int r;
  do r = ioctl(fd, request, arg);
  while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(info.Env(), errno, "ioctl", op, h->path());
  return Napi::Number::New(info.Env(), r);
}

Napi::Value StructIoctl(const Napi::CallbackInfo& info, unsigned long request, const char* op, size_t min) {
  FdHandle* h = H(info);
  std::vector<uint8_t> buf = ArgStruct(info, 1, min, op);
  int fd = h->Require(info.Env(), op);
  if (Ioctl(fd, request, buf.data()) < 0) ThrowErrno(info.Env(), errno, "ioctl", op, h->path());
  return CopyOut(info.Env(), buf.data(), buf.size());
}

void SetCloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

// --- container ---------------------------------------------------------------------
Napi::Value GetApiVersion(const Napi::CallbackInfo& info) { return SimpleIoctl(info, GET_API_VERSION, "VFIO_GET_API_VERSION", 0); }
Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  return SimpleIoctl(info, CHECK_EXTENSION, "VFIO_CHECK_EXTENSION", ArgU32(info, 1, "extension"));
}
Napi::Value SetIommu(const Napi::CallbackInfo& info) { return SimpleIoctl(info, SET_IOMMU, "VFIO_SET_IOMMU", ArgU32(info, 1, "type")); }
Napi::Value IommuGetInfo(const Napi::CallbackInfo& info) {
  return InfoIoctl(info, IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO", ArgReply(info, 1, sizeof(iommu_type1_info), kMaxArgsz), [](uint8_t*) {});
}

constexpr uint32_t kMapRead = 1, kMapWrite = 2;

// mapDma(container, flags, dmaBuffer, offset, iova, size): the vaddr comes from the buffer, never from JS.
Napi::Value MapDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t flags = ArgU32(info, 1, "flags");
  DmaBuffer* b = UnwrapTagged<DmaBuffer>(info, 2, kDmaBufferTag, "DmaBuffer");
  uint64_t offset = ArgU64(info, 3, "offset"), iova = ArgU64(info, 4, "iova"), size = ArgU64(info, 5, "size");
  if (flags & ~(kMapRead | kMapWrite)) ThrowRange(env, "flags may only contain READ (1) and WRITE (2)");
  if (b->freed()) ThrowClosed(env, "DmaBuffer", "");
  if (size == 0 || offset > b->size() || size > b->size() - offset) ThrowRange(env, "offset and size must lie within the DmaBuffer");
  int fd = h->Require(env, "VFIO_IOMMU_MAP_DMA");
  iommu_type1_dma_map m{sizeof(m), flags, reinterpret_cast<uint64_t>(b->base() + offset), iova, size};
  if (Ioctl(fd, IOMMU_MAP_DMA, &m) < 0) ThrowErrno(env, errno, "ioctl", "VFIO_IOMMU_MAP_DMA", h->path());
  h->dma[{0u, iova}] = FdHandle::DmaEntry{size, b};
  b->Pin();
  return env.Undefined();
}

constexpr uint32_t kUnmapAll = 2;

// unmapDma(container, flags, iova, size) -> bytes unmapped (bigint). flags: 0 or ALL (2).
Napi::Value UnmapDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t flags = ArgU32(info, 1, "flags");
  uint64_t iova = ArgU64(info, 2, "iova"), size = ArgU64(info, 3, "size");
  if (flags & ~kUnmapAll) ThrowRange(env, "flags may only contain ALL (2)");
  int fd = h->Require(env, "VFIO_IOMMU_UNMAP_DMA");
  iommu_type1_dma_unmap u{sizeof(u), flags, iova, size};
  if (Ioctl(fd, IOMMU_UNMAP_DMA, &u) < 0) ThrowErrno(env, errno, "ioctl", "VFIO_IOMMU_UNMAP_DMA", h->path());
  if (flags & kUnmapAll) {
    h->ReleaseAllDma(0, false);
  } else {
    uint64_t end = iova + size < iova ? std::numeric_limits<uint64_t>::max() : iova + size;
    h->ReleaseDma(0, iova, end);
  }
  return Napi::BigInt::New(env, u.size);
}

constexpr uint32_t kDirtyStart = 1, kDirtyStop = 2, kDirtyGet = 4;

// iommuDirtyPages(container, flags, iova, size, pgsize): START (1) / STOP (2) return
// undefined; GET_BITMAP (4) returns the bitmap (one bit per pgsize page), held in native memory.
Napi::Value IommuDirtyPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  uint32_t flags = ArgU32(info, 1, "flags");
  if (flags != kDirtyStart && flags != kDirtyStop && flags != kDirtyGet) ThrowRange(env, "flags must be exactly one of START (1), STOP (2), GET_BITMAP (4)");
  int fd = h->Require(env, "VFIO_IOMMU_DIRTY_PAGES");
  if (flags != kDirtyGet) {
    iommu_type1_dirty_bitmap d{sizeof(d), flags};
    if (Ioctl(fd, IOMMU_DIRTY_PAGES, &d) < 0) ThrowErrno(env, errno, "ioctl", "VFIO_IOMMU_DIRTY_PAGES", h->path());
    return env.Undefined();
  }
  uint64_t iova = ArgU64(info, 2, "iova"), size = ArgU64(info, 3, "size"), pgsize = ArgU64(info, 4, "pgsize");
  if (pgsize == 0 || (pgsize & (pgsize - 1)) != 0) ThrowRange(env, "pgsize must be a power of two");
  uint64_t pages = size / pgsize + (size % pgsize ? 1 : 0);
  uint64_t bytes = (pages + 63) / 64 * 8;
  if (size == 0 || bytes > (uint64_t{1} << 24)) ThrowRange(env, "size must be non-zero and its bitmap at most 16 MiB");
  std::vector<uint8_t> bitmap(bytes, 0);
  struct {
    iommu_type1_dirty_bitmap hdr;
    iommu_type1_dirty_bitmap_get get;
  } d{};
  static_assert(sizeof(d) == 48);
  d.hdr = {sizeof(d), kDirtyGet};
  d.get.iova = iova;
  d.get.size = size;
  d.get.bm = {pgsize, bytes, reinterpret_cast<uint64_t>(bitmap.data())};
  if (Ioctl(fd, IOMMU_DIRTY_PAGES, &d) < 0) ThrowErrno(env, errno, "ioctl", "VFIO_IOMMU_DIRTY_PAGES", h->path());
  return CopyOut(env, bitmap.data(), bitmap.size());
}

// --- group ---------------------------------------------------------------------------
Napi::Value GroupGetStatus(const Napi::CallbackInfo& info) {
  return InfoIoctl(info, GROUP_GET_STATUS, "VFIO_GROUP_GET_STATUS", Reply{sizeof(group_status), Bytes{nullptr, 0}}, [](uint8_t*) {});
}
Napi::Value GroupSetContainer(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  FdHandle* c = UnwrapTagged<FdHandle>(info, 1, kFdTag, "container or iommufd handle");
  int32_t cfd = c->Require(info.Env(), "VFIO_GROUP_SET_CONTAINER");
  int fd = h->Require(info.Env(), "VFIO_GROUP_SET_CONTAINER");
  if (Ioctl(fd, GROUP_SET_CONTAINER, &cfd) < 0) ThrowErrno(info.Env(), errno, "ioctl", "VFIO_GROUP_SET_CONTAINER", h->path());
  return info.Env().Undefined();
}
Napi::Value GroupUnsetContainer(const Napi::CallbackInfo& info) { return SimpleIoctl(info, GROUP_UNSET_CONTAINER, "VFIO_GROUP_UNSET_CONTAINER", 0); }
Napi::Value GroupGetDeviceFd(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  std::string name = ArgString(info, 1, "device name", 255);
  int fd = h->Require(info.Env(), "VFIO_GROUP_GET_DEVICE_FD");
  int dfd;
  do dfd = ioctl(fd, GROUP_GET_DEVICE_FD, name.c_str());
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0) ThrowErrno(info.Env(), errno, "ioctl", "VFIO_GROUP_GET_DEVICE_FD", h->path() + " (device " + name + ")");
  SetCloexec(dfd);
  return FdHandle::Create(info.Env(), dfd, name, "device");
}

// --- device ----------------------------------------------------------------------------
Napi::Value DeviceGetInfo(const Napi::CallbackInfo& info) {
  return InfoIoctl(info, DEVICE_GET_INFO, "VFIO_DEVICE_GET_INFO", ArgReply(info, 1, sizeof(device_info), kMaxArgsz), [](uint8_t*) {});
}
Napi::Value DeviceGetRegionInfo(const Napi::CallbackInfo& info) {
  uint32_t index = ArgU32(info, 1, "index");
  Reply reply = ArgReply(info, 2, sizeof(region_info), kMaxArgsz);
  return InfoIoctl(info, DEVICE_GET_REGION_INFO, "VFIO_DEVICE_GET_REGION_INFO", reply, [&](uint8_t* p) { memcpy(p + offsetof(region_info, index), &index, 4); });
}
Napi::Value DeviceGetIrqInfo(const Napi::CallbackInfo& info) {
  uint32_t index = ArgU32(info, 1, "index");
  // flags stay zero: mdpy and mbochs echo what the caller passed (kernel-6.12-facts H14).
  return InfoIoctl(info, DEVICE_GET_IRQ_INFO, "VFIO_DEVICE_GET_IRQ_INFO", ArgReply(info, 2, sizeof(irq_info), sizeof(irq_info)), [&](uint8_t* p) { memcpy(p + offsetof(irq_info, index), &index, 4); });
}
// SET_IRQS is input-only: nothing is copied back (interrupt triggers are a hot path).
Napi::Value DeviceSetIrqs(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  std::vector<uint8_t> buf = ArgStruct(info, 1, sizeof(irq_set), "VFIO_DEVICE_SET_IRQS");
  int fd = h->Require(info.Env(), "VFIO_DEVICE_SET_IRQS");
  if (Ioctl(fd, DEVICE_SET_IRQS, buf.data()) < 0) ThrowErrno(info.Env(), errno, "ioctl", "VFIO_DEVICE_SET_IRQS", h->path());
  return info.Env().Undefined();
}
Napi::Value DeviceReset(const Napi::CallbackInfo& info) { return SimpleIoctl(info, DEVICE_RESET, "VFIO_DEVICE_RESET", 0); }
Napi::Value DeviceQueryGfxPlane(const Napi::CallbackInfo& info) {
  return StructIoctl(info, DEVICE_QUERY_GFX_PLANE, "VFIO_DEVICE_QUERY_GFX_PLANE", sizeof(gfx_plane_info));
}
// The generic VFIO_DEVICE_FEATURE for features whose data is plain values. Not
// for those whose data holds an fd the kernel makes (MIG_DEVICE_STATE SET: the
// fd would have no owner) or a pointer the kernel follows (DMA_LOGGING_START
// reads a range array, DMA_LOGGING_REPORT writes a bitmap: a JS-chosen address
// would let the kernel write into this process anywhere): migration.cc has a
// function of its own for each. A PROBE carries no data and passes.
Napi::Value DeviceFeature(const Napi::CallbackInfo& info) {
  Bytes b = ArgBytes(info, 1, "VFIO_DEVICE_FEATURE");
  if (b.length >= sizeof(device_feature)) {
    uint32_t flags;
    memcpy(&flags, b.data + offsetof(device_feature, flags), 4);
    uint32_t feature = flags & FEATURE_MASK;
    bool probe = (flags & FEATURE_PROBE) != 0;
    if (!probe && ((feature == FEATURE_MIG_DEVICE_STATE && (flags & FEATURE_SET)) || feature == FEATURE_DMA_LOGGING_START || feature == FEATURE_DMA_LOGGING_REPORT)) {
      ThrowType(info.Env(), "VFIO_DEVICE_FEATURE " + std::to_string(feature) +
                                " carries an fd or a pointer: use deviceMigState / deviceDmaLoggingStart / deviceDmaLoggingReport");
    }
  }
  return StructIoctl(info, DEVICE_FEATURE, "VFIO_DEVICE_FEATURE", sizeof(device_feature));
}
Napi::Value DeviceIoeventfd(const Napi::CallbackInfo& info) {
  return StructIoctl(info, DEVICE_IOEVENTFD, "VFIO_DEVICE_IOEVENTFD", sizeof(device_ioeventfd));
}
Napi::Value DevicePciHotReset(const Napi::CallbackInfo& info) {
  return StructIoctl(info, DEVICE_PCI_HOT_RESET, "VFIO_DEVICE_PCI_HOT_RESET", sizeof(pci_hot_reset));
}
// The kernel answers ENOSPC with `count` filled in when argsz is too small: that reply
// is returned (not thrown) so TypeScript can grow argsz and ask again.
Napi::Value DeviceGetPciHotResetInfo(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  uint32_t argsz = ArgArgsz(info, 1, sizeof(pci_hot_reset_info));
  int fd = h->Require(info.Env(), "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
  std::vector<uint8_t> buf(argsz, 0);
  memcpy(buf.data(), &argsz, 4);
  if (Ioctl(fd, DEVICE_GET_PCI_HOT_RESET_INFO, buf.data()) < 0 && errno != ENOSPC) {
    ThrowErrno(info.Env(), errno, "ioctl", "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", h->path());
  }
  return CopyOut(info.Env(), buf.data(), buf.size());
}
Napi::Value DeviceGetGfxDmabuf(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  uint32_t id = ArgU32(info, 1, "dmabufId");
  int fd = h->Require(info.Env(), "VFIO_DEVICE_GET_GFX_DMABUF");
  int dfd;
  do dfd = ioctl(fd, DEVICE_GET_GFX_DMABUF, &id);
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0) ThrowErrno(info.Env(), errno, "ioctl", "VFIO_DEVICE_GET_GFX_DMABUF", h->path());
  SetCloexec(dfd);  // dma_buf_fd() does not set it
  return FdHandle::Create(info.Env(), dfd, h->path() + " dmabuf " + std::to_string(id), "dmabuf");
}

// --- region access (pread/pwrite at an exact width) ------------------------------------
off_t ArgOffset(const Napi::CallbackInfo& info, size_t i) {
  uint64_t off = ArgU64(info, i, "offset");
  if (off > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) ThrowRange(info.Env(), "offset must be below 2^63");
  return static_cast<off_t>(off);
}

size_t ArgWidth(const Napi::CallbackInfo& info, size_t i) {
  uint32_t w = ArgU32(info, i, "width");
  if (w != 1 && w != 2 && w != 4 && w != 8) ThrowRange(info.Env(), "width must be 1, 2, 4 or 8");
  return w;
}

// Reads/writes exactly `len` bytes; a short transfer is an error (EIO).
void FullIo(Napi::Env env, FdHandle* h, bool write, uint8_t* p, size_t len, off_t off, const char* op) {
  int fd = h->Require(env, op);
  size_t done = 0;
  while (done < len) {
    ssize_t r = write ? pwrite(fd, p + done, len - done, off + static_cast<off_t>(done)) : pread(fd, p + done, len - done, off + static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ThrowErrno(env, errno, write ? "pwrite" : "pread", op, h->path());
    if (r == 0) ThrowErrno(env, EIO, write ? "pwrite" : "pread", std::string(op) + " (short transfer)", h->path());
    done += static_cast<size_t>(r);
  }
}

Napi::Value RegionRead(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  off_t off = ArgOffset(info, 1);
  size_t w = ArgWidth(info, 2);
  uint8_t buf[8] = {0};
  FullIo(info.Env(), h, false, buf, w, off, "region read");
  if (w == 8) {
    uint64_t v;
    memcpy(&v, buf, 8);
    return Napi::BigInt::New(info.Env(), v);
  }
  uint32_t v = 0;
  memcpy(&v, buf, w);  // little-endian host
  return Napi::Number::New(info.Env(), v);
}

Napi::Value RegionWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = H(info);
  off_t off = ArgOffset(info, 1);
  size_t w = ArgWidth(info, 2);
  uint8_t buf[8] = {0};
  if (w == 8) {
    if (!info[3].IsBigInt()) ThrowType(env, "a 64-bit value must be a bigint");
    bool lossless = false;
    uint64_t v = info[3].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, "value must fit in 64 bits");
    memcpy(buf, &v, 8);
  } else {
    uint32_t v = ArgU32(info, 3, "value");
    if (w < 4 && v >= (1u << (8 * w))) ThrowRange(env, "value does not fit in " + std::to_string(w) + " byte(s)");
    memcpy(buf, &v, w);
  }
  FullIo(env, h, true, buf, w, off, "region write");
  return env.Undefined();
}

// readInto(h, offset, bytes) / writeFrom(h, offset, bytes): the whole array, synchronously.
Napi::Value RegionReadInto(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  off_t off = ArgOffset(info, 1);
  Bytes b = ArgBytes(info, 2, "buffer");
  FullIo(info.Env(), h, false, b.data, b.length, off, "region read");
  return Napi::Number::New(info.Env(), static_cast<double>(b.length));
}
Napi::Value RegionWriteFrom(const Napi::CallbackInfo& info) {
  FdHandle* h = H(info);
  off_t off = ArgOffset(info, 1);
  Bytes b = ArgBytes(info, 2, "buffer");
  FullIo(info.Env(), h, true, b.data, b.length, off, "region write");
  return Napi::Number::New(info.Env(), static_cast<double>(b.length));
}

}  // namespace

void DefineIoctls(Napi::Env env, Napi::Object exports) {
  DefineFunctions(env, exports, {
      {"getApiVersion", GetApiVersion},
      {"checkExtension", CheckExtension},
      {"setIommu", SetIommu},
      {"iommuGetInfo", IommuGetInfo},
      {"mapDma", MapDma},
      {"unmapDma", UnmapDma},
      {"iommuDirtyPages", IommuDirtyPages},
      {"groupGetStatus", GroupGetStatus},
      {"groupSetContainer", GroupSetContainer},
      {"groupUnsetContainer", GroupUnsetContainer},
      {"groupGetDeviceFd", GroupGetDeviceFd},
      {"deviceGetInfo", DeviceGetInfo},
      {"deviceGetRegionInfo", DeviceGetRegionInfo},
      {"deviceGetIrqInfo", DeviceGetIrqInfo},
      {"deviceSetIrqs", DeviceSetIrqs},
      {"deviceReset", DeviceReset},
      {"deviceQueryGfxPlane", DeviceQueryGfxPlane},
      {"deviceGetGfxDmabuf", DeviceGetGfxDmabuf},
      {"deviceFeature", DeviceFeature},
      {"deviceIoeventfd", DeviceIoeventfd},
      {"deviceGetPciHotResetInfo", DeviceGetPciHotResetInfo},
      {"devicePciHotReset", DevicePciHotReset},
      {"regionRead", RegionRead},
      {"regionWrite", RegionWrite},
      {"regionReadInto", RegionReadInto},
      {"regionWriteFrom", RegionWriteFrom},
  });
}

}  // namespace vfio
