// mmap'd views of device regions and dma-bufs, and native-owned DMA memory.
//
// Views are external ArrayBuffers over the mapping. Revoking a view (unmap,
// device close or reset) first puts anonymous memory where the device pages
// were (MAP_FIXED), so a stale pointer -- a detached view, an in-flight async
// read -- can never fault, then detaches the ArrayBuffer. The address range is
// released when the ArrayBuffer is collected; if the buffer was transferred
// away before we could detach it, the range is never released (a clone may
// still point at it).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"

namespace vfio {

struct Block {
  void* addr;
  size_t len;
  bool leaked = false;
};

static void FinalizeBlock(Napi::Env, void*, Block* b) {
  if (!b->leaked) munmap(b->addr, b->len);
  delete b;
}

static const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// Gives up our reference to `ab` and its memory: detach it (so every view reads as
// empty) unless someone already transferred it, in which case the memory must stay.
static void ReleaseView(Napi::Reference<Napi::ArrayBuffer>& ab, Block*& block) {
  if (ab.IsEmpty()) return;
  Napi::ArrayBuffer buf = ab.Value();
  if (buf.IsDetached()) block->leaked = true;
  else buf.Detach();
  ab.Reset();
  block = nullptr;
}

// ---------------------------------------------------------------------------------
// Mapping

Napi::Function Mapping::Define(Napi::Env env) {
  return DefineClass(env, "Mapping",
                     {
                         InstanceMethod<&Mapping::Unmap>("unmap"),
                         InstanceMethod<&Mapping::ReadInto>("readInto"),
                         InstanceMethod<&Mapping::WriteFrom>("writeFrom"),
                         InstanceMethod<&Mapping::Load>("load"),
                         InstanceMethod<&Mapping::Store>("store"),
                         InstanceAccessor<&Mapping::GetBuffer>("buffer"),
                         InstanceAccessor<&Mapping::GetLength>("length"),
                         InstanceAccessor<&Mapping::GetWritable>("writable"),
                         InstanceAccessor<&Mapping::GetMapped>("mapped"),
                     });
}

Mapping::Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowType(info.Env(), "Mapping cannot be constructed from JavaScript");
  data_ = Data(info.Env());
  info.This().As<Napi::Object>().TypeTag(&kMappingTag);  // before the insert (see EventFd's constructor)
  data_->mappings.insert(this);
}

Mapping::~Mapping() {
  if (mapped_) {
    mapped_ = false;
    if (block_ != nullptr) ab_.Reset();  // the ArrayBuffer's finalizer unmaps
    else munmap(addr_, length_);
  }
  if (data_ != nullptr) data_->mappings.erase(this);
}

void Mapping::Revoke(Napi::Env) {
  if (!mapped_) return;
  mapped_ = false;
  if (block_ != nullptr) {
    mmap(addr_, length_, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ReleaseView(ab_, block_);
  } else {
    munmap(addr_, length_);  // read-only mappings never had a JS view
  }
}

Napi::Value Mapping::Unmap(const Napi::CallbackInfo& info) {
  Revoke(info.Env());
  return info.Env().Undefined();
}

Napi::Value Mapping::GetBuffer(const Napi::CallbackInfo& info) {
  if (!mapped_) ThrowClosed(info.Env(), "mapping", path_);
  if (!writable_) ThrowType(info.Env(), "a read-only mapping has no view (a JS write would fault): use readInto()");
  return ab_.Value();
}
Napi::Value Mapping::GetLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(length_)); }
Napi::Value Mapping::GetWritable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), writable_); }
Napi::Value Mapping::GetMapped(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), mapped_); }

static size_t CheckSpan(const Napi::CallbackInfo& info, size_t offset, size_t len, size_t length) {
  if (offset > length || len > length - offset) ThrowRange(info.Env(), "offset and length must lie within the mapping");
  return offset;
}

// readInto(offset, bytes): copies out of the mapping (works for read-only mappings).
Napi::Value Mapping::ReadInto(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  Bytes b = ArgBytes(info, 1, "buffer");
  if (!mapped_) ThrowClosed(info.Env(), "mapping", path_);
  CheckSpan(info, static_cast<size_t>(off), b.length, length_);
  memcpy(b.data, addr_ + off, b.length);
  return Napi::Number::New(info.Env(), static_cast<double>(b.length));
}

Napi::Value Mapping::WriteFrom(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  Bytes b = ArgBytes(info, 1, "buffer");
  if (!mapped_) ThrowClosed(info.Env(), "mapping", path_);
  if (!writable_) ThrowType(info.Env(), "the mapping is read-only");
  CheckSpan(info, static_cast<size_t>(off), b.length, length_);
  memcpy(addr_ + off, b.data, b.length);
  return Napi::Number::New(info.Env(), static_cast<double>(b.length));
}

// load(offset, width) / store(offset, width, value): one naturally aligned volatile
// access of exactly `width` bytes, as device registers need (a JS DataView reads
// bytewise, memcpy in whatever width it likes).
static size_t CheckAccess(const Napi::CallbackInfo& info, uint64_t off, uint32_t width, size_t length) {
  if (width != 1 && width != 2 && width != 4 && width != 8) ThrowRange(info.Env(), "width must be 1, 2, 4 or 8");
  if (off % width != 0) ThrowRange(info.Env(), "offset must be aligned to the access width");
  if (off > length || width > length - off) ThrowRange(info.Env(), "access outside the mapping");
  return static_cast<size_t>(off);
}

Napi::Value Mapping::Load(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  uint32_t width = ArgU32(info, 1, "width");
  if (!mapped_) ThrowClosed(info.Env(), "mapping", path_);
  uint8_t* p = addr_ + CheckAccess(info, off, width, length_);
  switch (width) {
    case 1: return Napi::Number::New(info.Env(), *reinterpret_cast<volatile uint8_t*>(p));
    case 2: return Napi::Number::New(info.Env(), *reinterpret_cast<volatile uint16_t*>(p));
    case 4: return Napi::Number::New(info.Env(), *reinterpret_cast<volatile uint32_t*>(p));
    default: return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(*reinterpret_cast<volatile uint64_t*>(p)));
  }
}

Napi::Value Mapping::Store(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t off = ArgU64(info, 0, "offset");
  uint32_t width = ArgU32(info, 1, "width");
  if (!mapped_) ThrowClosed(env, "mapping", path_);
  if (!writable_) ThrowType(env, "the mapping is read-only");
  uint8_t* p = addr_ + CheckAccess(info, off, width, length_);
  if (width == 8) {
    if (!info[2].IsBigInt()) ThrowType(env, "a 64-bit value must be a bigint");
    bool lossless = false;
    uint64_t v = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, "value must fit in 64 bits");
    *reinterpret_cast<volatile uint64_t*>(p) = v;
    return env.Undefined();
  }
  uint32_t v = ArgU32(info, 2, "value");
  if (width < 4 && v >= (1u << (8 * width))) ThrowRange(env, "value does not fit in " + std::to_string(width) + " byte(s)");
  if (width == 1) *reinterpret_cast<volatile uint8_t*>(p) = static_cast<uint8_t>(v);
  else if (width == 2) *reinterpret_cast<volatile uint16_t*>(p) = static_cast<uint16_t>(v);
  else *reinterpret_cast<volatile uint32_t*>(p) = v;
  return env.Undefined();
}

// mmap(handle, offset, length, writable) -> Mapping (MAP_SHARED).
Napi::Value MmapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  uint64_t offset = ArgU64(info, 1, "offset");
  uint64_t length = ArgU64(info, 2, "length");
  bool writable = ArgBool(info, 3, "writable");
  if (offset % kPage != 0) ThrowRange(env, "offset must be page-aligned");
  if (length == 0 || length > (uint64_t{1} << 40)) ThrowRange(env, "length must be between 1 and 2^40");
  if (offset > static_cast<uint64_t>(INT64_MAX)) ThrowRange(env, "offset must be below 2^63");
  int fd = h->Require(env, "mmap");
  void* p = mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap", h->kind() == "dmabuf" ? "dma-buf mmap" : "region mmap", h->path());
  Napi::Object obj;
  try {
    obj = Data(env)->mappingCtor.New({Napi::External<void>::New(env, nullptr)});
  } catch (...) {
    munmap(p, length);
    throw;
  }
  Mapping* m = Mapping::Unwrap(obj);
  m->addr_ = static_cast<uint8_t*>(p);
  m->length_ = length;
  m->writable_ = writable;
  m->mapped_ = true;
  m->path_ = h->path();
  if (writable) {
    m->block_ = new Block{p, length};
    m->ab_ = Napi::Persistent(Napi::ArrayBuffer::New(env, p, length, FinalizeBlock, m->block_));
  }
  return obj;
}

// ---------------------------------------------------------------------------------
// DmaBuffer

Napi::Function DmaBuffer::Define(Napi::Env env) {
  return DefineClass(env, "DmaBuffer",
                     {
                         InstanceMethod<&DmaBuffer::Free>("free"),
                         InstanceAccessor<&DmaBuffer::GetSize>("size"),
                         InstanceAccessor<&DmaBuffer::GetPins>("pins"),
                         InstanceAccessor<&DmaBuffer::GetFreed>("freed"),
                         InstanceAccessor<&DmaBuffer::GetBuffer>("buffer"),
                         InstanceAccessor<&DmaBuffer::GetMemfd>("memfd"),
                     });
}

DmaBuffer::DmaBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DmaBuffer>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowType(info.Env(), "DmaBuffer cannot be constructed from JavaScript: use dmaAlloc()");
  data_ = Data(info.Env());
  info.This().As<Napi::Object>().TypeTag(&kDmaBufferTag);  // before the insert (see EventFd's constructor)
  data_->dmaBuffers.insert(this);
}

DmaBuffer::~DmaBuffer() {
  if (memfd_ >= 0) close(memfd_);
  if (data_ != nullptr) data_->dmaBuffers.erase(this);
  // The ArrayBuffer (if still referenced elsewhere) owns the memory from here.
}

void DmaBuffer::Pin() {
  if (pins_++ == 0) Ref();
}
void DmaBuffer::Unpin() {
  if (--pins_ == 0) Unref();
}

Napi::Value DmaBuffer::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (base_ == nullptr) return env.Undefined();  // idempotent
  if (pins_ > 0) {
    ThrowErrno(env, EBUSY, "munmap", "DmaBuffer free (still mapped for DMA " + std::to_string(pins_) + " time(s): unmap it first)", "");
  }
  ReleaseView(ab_, block_);
  base_ = nullptr;
  if (memfd_ >= 0) {
    close(memfd_);
    memfd_ = -1;
  }
  return env.Undefined();
}

Napi::Value DmaBuffer::GetSize(const Napi::CallbackInfo& info) { return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(size_)); }
Napi::Value DmaBuffer::GetPins(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pins_); }
Napi::Value DmaBuffer::GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), base_ == nullptr); }
Napi::Value DmaBuffer::GetBuffer(const Napi::CallbackInfo& info) {
  if (base_ == nullptr) ThrowClosed(info.Env(), "DmaBuffer", "");
  return ab_.Value();
}
Napi::Value DmaBuffer::GetMemfd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), memfd_); }

// dmaAlloc(size, hugepage, memfd) -> DmaBuffer: page-aligned, zeroed, MADV_DONTFORK.
Napi::Value DmaAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size = ArgU64(info, 0, "size");
  bool huge = ArgBool(info, 1, "hugepage");
  bool useMemfd = ArgBool(info, 2, "memfd");
  const size_t align = huge ? (size_t{2} << 20) : kPage;
  if (size == 0 || size % align != 0 || size > (uint64_t{1} << 40)) {
    ThrowRange(env, "size must be a non-zero multiple of " + std::to_string(align) + " bytes (at most 2^40)");
  }
  int memfd = -1;
  int flags;
  if (useMemfd) {
    memfd = memfd_create("vfio-dma", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
    if (memfd < 0) ThrowErrno(env, errno, "memfd_create", "DmaBuffer alloc", "");
    if (ftruncate(memfd, static_cast<off_t>(size)) < 0) {
      int e = errno;
      close(memfd);
      ThrowErrno(env, e, "ftruncate", "DmaBuffer alloc", "");
    }
    flags = MAP_SHARED;
  } else {
    flags = MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, memfd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    if (memfd >= 0) close(memfd);
    ThrowErrno(env, e, "mmap", huge ? "DmaBuffer alloc (hugetlb)" : "DmaBuffer alloc", "");
  }
  madvise(p, size, MADV_DONTFORK);  // a forked child must not share pinned pages
  Napi::Object obj;
  try {
    obj = Data(env)->dmaBufferCtor.New({Napi::External<void>::New(env, nullptr)});
  } catch (...) {
    munmap(p, size);
    if (memfd >= 0) close(memfd);
    throw;
  }
  DmaBuffer* b = DmaBuffer::Unwrap(obj);
  b->base_ = static_cast<uint8_t*>(p);
  b->size_ = size;
  b->memfd_ = memfd;
  b->block_ = new Block{p, size};
  b->ab_ = Napi::Persistent(Napi::ArrayBuffer::New(env, p, size, FinalizeBlock, b->block_));
  return obj;
}

}  // namespace vfio
