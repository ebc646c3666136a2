// The vfio addon's thin native seam: fds, ioctls, mmap, pread/pwrite,
// eventfd and uv_poll. Policy (argsz protocols, decoding, lifetimes between
// objects, hints) lives in TypeScript; native code owns every pointer and
// length the kernel sees and never lets a JS value turn into one.
#pragma once
#define NAPI_VERSION 8
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>

namespace vfio {

class FdHandle;
class Mapping;
struct Block;
class EventFd;
class DmaBuffer;

// Per-environment state (context-aware: each worker thread has its own).
struct AddonData {
  Napi::FunctionReference errorCtor;  // the JS VfioError class, from initialize()
  Napi::FunctionReference fdCtor, mappingCtor, eventFdCtor, dmaBufferCtor;
  std::unordered_set<FdHandle*> fds;
  std::unordered_set<Mapping*> mappings;
  std::unordered_set<EventFd*> eventfds;
  std::unordered_set<DmaBuffer*> dmaBuffers;
  napi_async_cleanup_hook_handle cleanupHandle = nullptr;
  int pendingCloses = 0;
  bool tearingDown = false;
};

AddonData* Data(Napi::Env env);

// --- errors: real instances of the JS VfioError class ------------------------
// The VfioError for a failed syscall, not thrown (to reject a promise with).
Napi::Object MakeErrno(Napi::Env env, int err, const char* syscall, const std::string& operation, const std::string& path);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& operation, const std::string& path);
[[noreturn]] void ThrowClosed(Napi::Env env, const std::string& what, const std::string& path);
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// --- arguments -----------------------------------------------------------------
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, size_t maxLen);
// A Uint8Array/Buffer argument; `data`/`length` stay valid for this call only.
struct Bytes {
  uint8_t* data;
  size_t length;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> CopyOut(Napi::Env env, const void* data, size_t length);

// Type tags: an object is only ever unwrapped as the class that wrapped it.
extern const napi_type_tag kFdTag, kMappingTag, kEventFdTag, kDmaBufferTag, kFdKeyTag;
template <typename T>
T* UnwrapTagged(const Napi::CallbackInfo& info, size_t i, const napi_type_tag& tag, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&tag)) ThrowType(info.Env(), std::string("argument ") + std::to_string(i + 1) + " must be a " + what);
  T* p = Napi::ObjectWrap<T>::Unwrap(v.As<Napi::Object>());
  if (p == nullptr) ThrowType(info.Env(), std::string("argument ") + std::to_string(i + 1) + " must be a " + what);
  return p;
}

// An FdHandle argument: the FdHandle object itself, or its key (FdHandle.key).
// The key is a type-tagged External, checked with one compare of the tag that
// Node keeps beside it, where an object costs two private-symbol lookups (its
// tag, then its wrapped pointer): hot paths (register access, DMA map) pass the
// key. A key outliving its FdHandle resolves to ERR_VFIO_CLOSED, never to a
// dangling pointer.
FdHandle* ArgFd(const Napi::CallbackInfo& info, size_t i);

// Adds `functions` to `exports` by name.
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
void DefineFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<std::pair<const char*, NativeFn>> functions);

// Retries on EINTR. Returns the ioctl's result or -1 with errno set.
int Ioctl(int fd, unsigned long request, void* arg);

// --- an owned file descriptor (container, group, device, iommufd, dma-buf) ------
class FdHandle : public Napi::ObjectWrap<FdHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env, int fd, const std::string& path, const std::string& kind);
  explicit FdHandle(const Napi::CallbackInfo& info);
  ~FdHandle() override;

  // The fd, or throws ERR_VFIO_CLOSED naming `operation` (a C string: no
  // std::string is made on the success path).
  int Require(Napi::Env env, const char* operation) const;
  const std::string& path() const { return path_; }
  bool isOpen() const { return fd_ >= 0; }
  const std::string& kind() const { return kind_; }
  void CloseNow();

  // DMA mappings made through this container/iommufd fd pin DmaBuffers; the
  // kernel drops them when the fd closes, and so do we.
  struct DmaEntry {
    uint64_t size;
    DmaBuffer* buffer;
  };
  std::map<std::pair<uint32_t, uint64_t>, DmaEntry> dma;  // (ioas id or 0, iova) -> mapping
  void ReleaseDma(uint32_t space, uint64_t iova, uint64_t end);  // entries within [iova, end) of `space`
  void ReleaseAllDma(uint32_t space, bool allSpaces);

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetPath(const Napi::CallbackInfo& info);
  Napi::Value GetKind(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetKey(const Napi::CallbackInfo& info);
  int fd_ = -1;
  std::string path_;
  std::string kind_;
  AddonData* data_ = nullptr;
  struct FdKey* key_ = nullptr;  // shared with the key Externals; see ArgFd
};

// What a key External points at. The FdHandle and each External hold one
// reference; the FdHandle's destructor clears `handle` before dropping its own.
struct FdKey {
  FdHandle* handle;
  int refs;
};

// --- page-aligned memory owned by native code, for DMA ---------------------------
class DmaBuffer : public Napi::ObjectWrap<DmaBuffer> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit DmaBuffer(const Napi::CallbackInfo& info);
  ~DmaBuffer() override;
  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  bool freed() const { return base_ == nullptr; }
  // Live DMA mappings referencing this buffer. While pinned, the JS object is
  // kept alive so container/IOAS tables never point at a collected buffer.
  void Pin();
  void Unpin();
  int pins() const { return pins_; }

 private:
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetPins(const Napi::CallbackInfo& info);
  Napi::Value GetFreed(const Napi::CallbackInfo& info);
  Napi::Value GetBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetMemfd(const Napi::CallbackInfo& info);
  friend Napi::Value DmaAlloc(const Napi::CallbackInfo& info);
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  int memfd_ = -1;
  int pins_ = 0;
  struct Block* block_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> ab_;
  AddonData* data_ = nullptr;
};

// --- an mmap of a device region or dma-buf ---------------------------------------
class Mapping : public Napi::ObjectWrap<Mapping> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Mapping(const Napi::CallbackInfo& info);
  ~Mapping() override;
  // Detaches the ArrayBuffer and puts harmless anonymous memory where the device was.
  void Revoke(Napi::Env env);

 private:
  friend Napi::Value MmapFd(const Napi::CallbackInfo& info);
  Napi::Value Unmap(const Napi::CallbackInfo& info);
  Napi::Value GetBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetLength(const Napi::CallbackInfo& info);
  Napi::Value GetWritable(const Napi::CallbackInfo& info);
  Napi::Value GetMapped(const Napi::CallbackInfo& info);
  Napi::Value ReadInto(const Napi::CallbackInfo& info);
  Napi::Value WriteFrom(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Store(const Napi::CallbackInfo& info);
  uint8_t* addr_ = nullptr;
  size_t length_ = 0;
  bool writable_ = false;
  bool mapped_ = false;
  std::string path_;
  struct Block* block_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> ab_;
  AddonData* data_ = nullptr;
};

// --- a non-blocking eventfd watched by uv_poll on this env's loop ------------------
class EventFd : public Napi::ObjectWrap<EventFd> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EventFd(const Napi::CallbackInfo& info);
  ~EventFd() override;
  void CloseNow();

 private:
  friend Napi::Value NewEventFd(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Signal(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  void StopPolling();
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;  // heap: freed in its close callback, never with `this`
  bool polling_ = false;
  bool refed_ = true;
  Napi::FunctionReference callback_;
  Napi::Env env_;
  AddonData* data_ = nullptr;
};

}  // namespace vfio
