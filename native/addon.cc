// Module init, VfioError bridging, argument checking, FdHandle and env teardown.
#include "addon.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include "uapi.h"

namespace vfio {

// Random 128-bit tags, one per wrapped class.
const napi_type_tag kFdTag = {0x7a1f3c52e94b4d01ULL, 0x9b0e6f4d2c8a1e55ULL};
const napi_type_tag kFdKeyTag = {0x51c7e0a94f2d6b38ULL, 0xa6d31f8e072b95c4ULL};
const napi_type_tag kMappingTag = {0x3e8d1b7c5a294f62ULL, 0x84c2d9e1f6a03b77ULL};
const napi_type_tag kEventFdTag = {0xc51a7e3f08d24b96ULL, 0x2f6b8e4a1d9c0357ULL};
const napi_type_tag kDmaBufferTag = {0x619f2d8c4b7e3a05ULL, 0xd3a85c1e7f2b4960ULL};

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

int Ioctl(int fd, unsigned long request, void* arg) {
  int r;
  do r = ioctl(fd, request, arg);
  while (r < 0 && errno == EINTR);
  return r;
}

void DefineFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<std::pair<const char*, NativeFn>> functions) {
  for (auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
}

// ---------------------------------------------------------------------------------
// Errors

[[noreturn]] static void ThrowValue(Napi::Env env, Napi::Value err) { throw Napi::Error(env, err); }

Napi::Object MakeErrno(Napi::Env env, int err, const char* syscall, const std::string& operation, const std::string& path) {
  AddonData* d = Data(env);
  Napi::Object init = Napi::Object::New(env);
  init.Set("errno", Napi::Number::New(env, err));
  init.Set("syscall", Napi::String::New(env, syscall));
  if (!operation.empty()) init.Set("operation", Napi::String::New(env, operation));
  if (!path.empty()) init.Set("path", Napi::String::New(env, path));
  if (d != nullptr && !d->errorCtor.IsEmpty()) return d->errorCtor.New({init});
  // initialize() not called yet: still a SystemError-shaped Error.
  Napi::Error e = Napi::Error::New(env, std::string(strerror(err)) + ", " + syscall + " " + operation + " '" + path + "'");
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e.Value();
}

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& operation, const std::string& path) {
  ThrowValue(env, MakeErrno(env, err, syscall, operation, path));
}

[[noreturn]] void ThrowClosed(Napi::Env env, const std::string& what, const std::string& path) {
  AddonData* d = Data(env);
  if (d != nullptr && !d->errorCtor.IsEmpty()) {
    Napi::Value closed = d->errorCtor.Value().Get("closed");
    if (closed.IsFunction()) ThrowValue(env, closed.As<Napi::Function>().Call(d->errorCtor.Value(), {Napi::String::New(env, what), Napi::String::New(env, path)}));
  }
  Napi::Error e = Napi::Error::New(env, "ERR_VFIO_CLOSED: " + what + " is closed");
  e.Set("code", Napi::String::New(env, "ERR_VFIO_CLOSED"));
  throw e;
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

// ---------------------------------------------------------------------------------
// Arguments: strict types, no silent truncation.

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  napi_valuetype t = v.Type();
  if (t == napi_number) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) ThrowRange(info.Env(), std::string(name) + " must be a non-negative safe integer or a bigint");
    return static_cast<uint64_t>(d);
  }
  if (t == napi_bigint) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(info.Env(), std::string(name) + " must fit in an unsigned 64-bit integer");
    return r;
  }
  ThrowType(info.Env(), std::string(name) + " must be a bigint or a number");
}

static double ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowType(info.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::floor(d) != d || std::isinf(d)) ThrowRange(info.Env(), std::string(name) + " must be an integer");
  return d;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgInteger(info, i, name);
  if (d < 0 || d > 4294967295.0) ThrowRange(info.Env(), std::string(name) + " must be between 0 and 2^32-1");
  return static_cast<uint32_t>(d);
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgInteger(info, i, name);
  if (d < -2147483648.0 || d > 2147483647.0) ThrowRange(info.Env(), std::string(name) + " must fit in a signed 32-bit integer");
  return static_cast<int32_t>(d);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) ThrowType(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, size_t maxLen) {
  if (!info[i].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.size() > maxLen) ThrowRange(info.Env(), std::string(name) + " is too long");
  if (s.find('\0') != std::string::npos) ThrowType(info.Env(), std::string(name) + " must not contain NUL");
  return s;
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(info.Env(), std::string(name) + " must be a Uint8Array or Buffer");
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  return Bytes{a.Data(), a.ByteLength()};
}

Napi::Buffer<uint8_t> CopyOut(Napi::Env env, const void* data, size_t length) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), length);
}

// ---------------------------------------------------------------------------------
// FdHandle

Napi::Function FdHandle::Define(Napi::Env env) {
  return DefineClass(env, "FdHandle",
                     {
                         InstanceMethod<&FdHandle::Close>("close"),
                         InstanceAccessor<&FdHandle::GetFd>("fd"),
                         InstanceAccessor<&FdHandle::GetPath>("path"),
                         InstanceAccessor<&FdHandle::GetKind>("kind"),
                         InstanceAccessor<&FdHandle::GetClosed>("closed"),
                         InstanceAccessor<&FdHandle::GetKey>("key"),
                     });
}

FdHandle::FdHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdHandle>(info) {
  // Only native code creates these (Create passes an External token).
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowType(info.Env(), "FdHandle cannot be constructed from JavaScript");
  info.This().As<Napi::Object>().TypeTag(&kFdTag);  // before the insert (see EventFd's constructor)
  data_ = Data(info.Env());
  data_->fds.insert(this);
}

Napi::Object FdHandle::Create(Napi::Env env, int fd, const std::string& path, const std::string& kind) {
  Napi::Object obj;
  try {
    obj = Data(env)->fdCtor.New({Napi::External<void>::New(env, nullptr)});
  } catch (...) {
    close(fd);
    throw;
  }
  FdHandle* h = Unwrap(obj);
  h->fd_ = fd;
  h->path_ = path;
  h->kind_ = kind;
  return obj;
}

FdHandle::~FdHandle() {
  CloseNow();
  if (data_ != nullptr) data_->fds.erase(this);
  if (key_ != nullptr) {
    key_->handle = nullptr;
    if (--key_->refs == 0) delete key_;
  }
}

int FdHandle::Require(Napi::Env env, const char* operation) const {
  if (fd_ < 0) ThrowClosed(env, kind_.empty() ? std::string(operation) : kind_, path_);
  return fd_;
}

// A new key External each time (callers keep the one they got); all share one FdKey.
Napi::Value FdHandle::GetKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (key_ == nullptr) key_ = new FdKey{this, 1};
  key_->refs++;
  Napi::External<FdKey> ext;
  try {
    ext = Napi::External<FdKey>::New(env, key_, [](Napi::Env, FdKey* k) {
      if (--k->refs == 0) delete k;
    });
  } catch (...) {
    key_->refs--;
    throw;
  }
  if (napi_type_tag_object(env, ext, &kFdKeyTag) != napi_ok) ThrowType(env, "this Node cannot type-tag an External (Node-API 8 is required)");
  return ext;
}

FdHandle* ArgFd(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  napi_value v = info[i];
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  if (t == napi_external) {
    bool tagged = false;
    void* p = nullptr;
    if (napi_check_object_type_tag(env, v, &kFdKeyTag, &tagged) == napi_ok && tagged && napi_get_value_external(env, v, &p) == napi_ok) {
      FdHandle* h = static_cast<FdKey*>(p)->handle;
      if (h == nullptr) ThrowClosed(env, "VFIO handle", "");
      return h;
    }
  } else if (t == napi_object) {
    return UnwrapTagged<FdHandle>(info, i, kFdTag, "VFIO handle");
  }
  ThrowType(env, std::string("argument ") + std::to_string(i + 1) + " must be a VFIO handle");
}

void FdHandle::CloseNow() {
  if (fd_ < 0) return;
  // The kernel drops this fd's DMA mappings with it: unpin their buffers.
  for (auto& [key, e] : dma) e.buffer->Unpin();
  dma.clear();
  close(fd_);  // Linux always releases the fd, even on EINTR
  fd_ = -1;
}

void FdHandle::ReleaseDma(uint32_t space, uint64_t iova, uint64_t end) {
  for (auto it = dma.lower_bound({space, iova}); it != dma.end() && it->first.first == space && it->first.second < end;) {
    if (it->first.second + it->second.size <= end) {
      it->second.buffer->Unpin();
      it = dma.erase(it);
    } else {
      ++it;
    }
  }
}

void FdHandle::ReleaseAllDma(uint32_t space, bool allSpaces) {
  for (auto it = dma.begin(); it != dma.end();) {
    if (allSpaces || it->first.first == space) {
      it->second.buffer->Unpin();
      it = dma.erase(it);
    } else {
      ++it;
    }
  }
}

Napi::Value FdHandle::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}
Napi::Value FdHandle::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value FdHandle::GetPath(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
Napi::Value FdHandle::GetKind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kind_); }
Napi::Value FdHandle::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

// open(path, kind, readOnly?) -> FdHandle. Always O_CLOEXEC.
static Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path", 4096);
  std::string kind = ArgString(info, 1, "kind", 64);
  bool readOnly = info.Length() > 2 && ArgBool(info, 2, "readOnly");
  int fd;
  do fd = open(path.c_str(), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(env, errno, "open", "", path);
  return FdHandle::Create(env, fd, path, kind);
}

// adopt(fd, kind, label) -> FdHandle owning a close-on-exec duplicate; the caller keeps its fd.
static Napi::Value Adopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd = ArgI32(info, 0, "fd");
  std::string kind = ArgString(info, 1, "kind", 64);
  std::string label = ArgString(info, 2, "label", 4096);
  if (fd < 0) ThrowRange(env, "fd must be a non-negative file descriptor");
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) ThrowErrno(env, errno, "fcntl", "F_DUPFD_CLOEXEC", label);
  return FdHandle::Create(env, dup, label, kind);
}

// The compiler's view of every struct we pass to the kernel, for checking the TS codecs.
static Napi::Value Layouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto add = [&](const char* name, size_t size, std::initializer_list<std::pair<const char*, size_t>> fields) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    Napi::Object f = Napi::Object::New(env);
    for (auto& [n, off] : fields) f.Set(n, Napi::Number::New(env, static_cast<double>(off)));
    s.Set("fields", f);
    out.Set(name, s);
  };
  using namespace vfio_uapi;
#define F(s, f) {#f, offsetof(s, f)}
  add("vfio_info_cap_header", sizeof(info_cap_header), {F(info_cap_header, id), F(info_cap_header, version), F(info_cap_header, next)});
  add("vfio_group_status", sizeof(group_status), {F(group_status, argsz), F(group_status, flags)});
  add("vfio_device_info", sizeof(device_info),
      {F(device_info, argsz), F(device_info, flags), F(device_info, num_regions), F(device_info, num_irqs), F(device_info, cap_offset), F(device_info, pad)});
  add("vfio_region_info", sizeof(region_info),
      {F(region_info, argsz), F(region_info, flags), F(region_info, index), F(region_info, cap_offset), F(region_info, size), F(region_info, offset)});
  add("vfio_irq_info", sizeof(irq_info), {F(irq_info, argsz), F(irq_info, flags), F(irq_info, index), F(irq_info, count)});
  add("vfio_irq_set", sizeof(irq_set),
      {F(irq_set, argsz), F(irq_set, flags), F(irq_set, index), F(irq_set, start), F(irq_set, count), F(irq_set, data)});
  add("vfio_device_gfx_plane_info", sizeof(gfx_plane_info),
      {F(gfx_plane_info, argsz), F(gfx_plane_info, flags), F(gfx_plane_info, drm_plane_type), F(gfx_plane_info, drm_format),
       F(gfx_plane_info, drm_format_mod), F(gfx_plane_info, width), F(gfx_plane_info, height), F(gfx_plane_info, stride),
       F(gfx_plane_info, size), F(gfx_plane_info, x_pos), F(gfx_plane_info, y_pos), F(gfx_plane_info, x_hot), F(gfx_plane_info, y_hot),
       F(gfx_plane_info, region_index), F(gfx_plane_info, reserved)});
  add("vfio_device_feature", sizeof(device_feature), {F(device_feature, argsz), F(device_feature, flags), F(device_feature, data)});
  add("vfio_device_feature_mig_state", sizeof(device_feature_mig_state), {F(device_feature_mig_state, device_state), F(device_feature_mig_state, data_fd)});
  add("vfio_precopy_info", sizeof(precopy_info), {F(precopy_info, argsz), F(precopy_info, flags), F(precopy_info, initial_bytes), F(precopy_info, dirty_bytes)});
  add("vfio_device_feature_dma_logging_control", sizeof(dma_logging_control),
      {F(dma_logging_control, page_size), F(dma_logging_control, num_ranges), F(dma_logging_control, ranges)});
  add("vfio_device_feature_dma_logging_range", sizeof(dma_logging_range), {F(dma_logging_range, iova), F(dma_logging_range, length)});
  add("vfio_device_feature_dma_logging_report", sizeof(dma_logging_report),
      {F(dma_logging_report, iova), F(dma_logging_report, length), F(dma_logging_report, page_size), F(dma_logging_report, bitmap)});
  add("vfio_pci_hot_reset_info", sizeof(pci_hot_reset_info), {F(pci_hot_reset_info, argsz), F(pci_hot_reset_info, flags), F(pci_hot_reset_info, count)});
  add("vfio_pci_hot_reset", sizeof(pci_hot_reset),
      {F(pci_hot_reset, argsz), F(pci_hot_reset, flags), F(pci_hot_reset, count), F(pci_hot_reset, group_fds)});
  add("vfio_device_bind_iommufd", sizeof(device_bind_iommufd),
      {F(device_bind_iommufd, argsz), F(device_bind_iommufd, flags), F(device_bind_iommufd, iommufd), F(device_bind_iommufd, out_devid)});
  add("vfio_device_attach_iommufd_pt", sizeof(device_attach_iommufd_pt),
      {F(device_attach_iommufd_pt, argsz), F(device_attach_iommufd_pt, flags), F(device_attach_iommufd_pt, pt_id)});
  add("vfio_iommu_type1_info", sizeof(iommu_type1_info),
      {F(iommu_type1_info, argsz), F(iommu_type1_info, flags), F(iommu_type1_info, iova_pgsizes), F(iommu_type1_info, cap_offset), F(iommu_type1_info, pad)});
  add("vfio_iommu_type1_dma_map", sizeof(iommu_type1_dma_map),
      {F(iommu_type1_dma_map, argsz), F(iommu_type1_dma_map, flags), F(iommu_type1_dma_map, vaddr), F(iommu_type1_dma_map, iova), F(iommu_type1_dma_map, size)});
  add("vfio_iommu_type1_dma_unmap", sizeof(iommu_type1_dma_unmap),
      {F(iommu_type1_dma_unmap, argsz), F(iommu_type1_dma_unmap, flags), F(iommu_type1_dma_unmap, iova), F(iommu_type1_dma_unmap, size)});
  add("iommu_ioas_alloc", sizeof(iommu_ioas_alloc), {F(iommu_ioas_alloc, size), F(iommu_ioas_alloc, flags), F(iommu_ioas_alloc, out_ioas_id)});
  add("iommu_ioas_iova_ranges", sizeof(iommu_ioas_iova_ranges),
      {F(iommu_ioas_iova_ranges, size), F(iommu_ioas_iova_ranges, ioas_id), F(iommu_ioas_iova_ranges, num_iovas),
       F(iommu_ioas_iova_ranges, allowed_iovas), F(iommu_ioas_iova_ranges, out_iova_alignment)});
  add("iommu_ioas_map", sizeof(iommu_ioas_map),
      {F(iommu_ioas_map, size), F(iommu_ioas_map, flags), F(iommu_ioas_map, ioas_id), F(iommu_ioas_map, user_va), F(iommu_ioas_map, length), F(iommu_ioas_map, iova)});
  add("iommu_ioas_unmap", sizeof(iommu_ioas_unmap), {F(iommu_ioas_unmap, size), F(iommu_ioas_unmap, ioas_id), F(iommu_ioas_unmap, iova), F(iommu_ioas_unmap, length)});
  add("iommu_ioas_copy", sizeof(iommu_ioas_copy),
      {F(iommu_ioas_copy, size), F(iommu_ioas_copy, flags), F(iommu_ioas_copy, dst_ioas_id), F(iommu_ioas_copy, src_ioas_id), F(iommu_ioas_copy, length),
       F(iommu_ioas_copy, dst_iova), F(iommu_ioas_copy, src_iova)});
  add("iommu_option", sizeof(iommu_option),
      {F(iommu_option, size), F(iommu_option, option_id), F(iommu_option, op), F(iommu_option, object_id), F(iommu_option, val64)});
  add("iommu_hw_info", sizeof(iommu_hw_info),
      {F(iommu_hw_info, size), F(iommu_hw_info, flags), F(iommu_hw_info, dev_id), F(iommu_hw_info, data_len), F(iommu_hw_info, data_uptr),
       F(iommu_hw_info, out_data_type), F(iommu_hw_info, out_max_pasid_log2), F(iommu_hw_info, out_capabilities)});
  add("iommu_hwpt_alloc", sizeof(iommu_hwpt_alloc),
      {F(iommu_hwpt_alloc, size), F(iommu_hwpt_alloc, flags), F(iommu_hwpt_alloc, dev_id), F(iommu_hwpt_alloc, pt_id), F(iommu_hwpt_alloc, out_hwpt_id),
       F(iommu_hwpt_alloc, data_type), F(iommu_hwpt_alloc, data_len), F(iommu_hwpt_alloc, data_uptr), F(iommu_hwpt_alloc, fault_id)});
#undef F
  return out;
}

// initialize(VfioError): native code throws real instances of the JS class.
static Napi::Value Initialize(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowType(info.Env(), "initialize expects the VfioError class");
  AddonData* d = Data(info.Env());
  d->errorCtor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// Counts of live native resources, for leak tests.
static Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* d = Data(env);
  auto count = [](auto& set, auto pred) {
    size_t n = 0;
    for (auto* p : set) n += pred(p) ? 1 : 0;
    return static_cast<double>(n);
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("openFds", count(d->fds, [](FdHandle* h) { return h->isOpen(); }));
  o.Set("fdHandles", static_cast<double>(d->fds.size()));
  o.Set("mappings", static_cast<double>(d->mappings.size()));
  o.Set("eventfds", static_cast<double>(d->eventfds.size()));
  o.Set("dmaBuffers", static_cast<double>(d->dmaBuffers.size()));
  return o;
}

// ---------------------------------------------------------------------------------
// Env teardown: close what is left, devices before groups before containers, and
// devices before iommufd; eventfd watchers are closed on the loop (async hook).

static int CloseRank(const std::string& kind) {
  if (kind == "device" || kind == "dmabuf") return 0;
  if (kind == "group") return 1;
  return 2;  // container, iommufd
}

static void Teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* d = static_cast<AddonData*>(arg);
  d->tearingDown = true;
  d->cleanupHandle = handle;
  for (int rank = 0; rank <= 2; rank++) {
    for (FdHandle* h : d->fds)
      if (CloseRank(h->kind()) == rank) h->CloseNow();
  }
  for (EventFd* e : std::vector<EventFd*>(d->eventfds.begin(), d->eventfds.end())) e->CloseNow();
  if (d->pendingCloses == 0) {
    napi_remove_async_cleanup_hook(handle);
    d->cleanupHandle = nullptr;
  }
}

Napi::Value MmapFd(const Napi::CallbackInfo& info);       // mapping.cc
Napi::Value DmaAlloc(const Napi::CallbackInfo& info);     // mapping.cc
Napi::Value NewEventFd(const Napi::CallbackInfo& info);   // eventfd.cc
void DefineIoctls(Napi::Env env, Napi::Object exports);   // ioctls.cc
void DefineIommufd(Napi::Env env, Napi::Object exports);  // iommufd.cc
void DefineMigration(Napi::Env env, Napi::Object exports);  // migration.cc

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* d = new AddonData();
  env.SetInstanceData<AddonData>(d);  // deleted by node-addon-api at env teardown
  d->fdCtor = Napi::Persistent(FdHandle::Define(env));
  d->mappingCtor = Napi::Persistent(Mapping::Define(env));
  d->eventFdCtor = Napi::Persistent(EventFd::Define(env));
  d->dmaBufferCtor = Napi::Persistent(DmaBuffer::Define(env));
  napi_async_cleanup_hook_handle h;
  NAPI_THROW_IF_FAILED(env, napi_add_async_cleanup_hook(env, Teardown, d, &h), exports);

  exports.Set("initialize", Napi::Function::New<Initialize>(env, "initialize"));
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("adopt", Napi::Function::New<Adopt>(env, "adopt"));
  exports.Set("layouts", Napi::Function::New<Layouts>(env, "layouts"));
  exports.Set("stats", Napi::Function::New<Stats>(env, "stats"));
  exports.Set("mmap", Napi::Function::New<MmapFd>(env, "mmap"));
  exports.Set("dmaAlloc", Napi::Function::New<DmaAlloc>(env, "dmaAlloc"));
  exports.Set("eventfd", Napi::Function::New<NewEventFd>(env, "eventfd"));
  exports.Set("FdHandle", d->fdCtor.Value());
  exports.Set("Mapping", d->mappingCtor.Value());
  exports.Set("EventFd", d->eventFdCtor.Value());
  exports.Set("DmaBuffer", d->dmaBufferCtor.Value());
  DefineIoctls(env, exports);
  DefineIommufd(env, exports);
  DefineMigration(env, exports);
  return exports;
}

}  // namespace vfio

static Napi::Object InitVfio(Napi::Env env, Napi::Object exports) { return vfio::Init(env, exports); }
NODE_API_MODULE(vfio, InitVfio)
