// Migration v2 and device-side DMA logging: the VFIO_DEVICE_FEATURE calls whose
// data holds an fd the kernel makes (MIG_DEVICE_STATE SET) or a pointer it
// follows (DMA_LOGGING_START's ranges, DMA_LOGGING_REPORT's bitmap), which the
// generic deviceFeature refuses. Here the fd becomes an FdHandle at once and
// every pointer is native memory of a bounded size. Also the data fd's I/O,
// on the libuv thread pool so a driver that blocks never stalls the event loop.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "uapi.h"

namespace vfio {
namespace {

using namespace vfio_uapi;

// The kernel's own limit on logging ranges is PAGE_SIZE / 16 = 256 on x86-64.
constexpr uint32_t kMaxLoggingRanges = 4096 / sizeof(dma_logging_range);
// A report's bitmap (one bit per page) is allocated here: bound it (2^31 pages).
constexpr uint64_t kMaxBitmapBytes = 256ull << 20;
// One read or write of the data fd moves at most this much.
constexpr uint32_t kMaxIoBytes = 64u << 20;

// VFIO_DEVICE_FEATURE with `len` bytes of data, in and out through `data`.
int Feature(int fd, uint32_t flags, void* data, size_t len) {
  std::vector<uint8_t> buf(sizeof(device_feature) + len);
  uint32_t argsz = static_cast<uint32_t>(buf.size());
  memcpy(buf.data(), &argsz, 4);
  memcpy(buf.data() + 4, &flags, 4);
  if (len) memcpy(buf.data() + sizeof(device_feature), data, len);
  int r = Ioctl(fd, DEVICE_FEATURE, buf.data());
  if (r >= 0 && len) memcpy(data, buf.data() + sizeof(device_feature), len);
  return r;
}

// deviceMigState(h, state) -> { state, data: FdHandle | null }: MIG_DEVICE_STATE SET.
// A data fd the kernel returns is owned by an FdHandle before anything can throw.
Napi::Value DeviceMigState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  uint32_t state = ArgU32(info, 1, "state");
  int fd = h->Require(env, "VFIO_DEVICE_FEATURE MIG_DEVICE_STATE");
  device_feature_mig_state ms{state, -1};
  if (Feature(fd, FEATURE_SET | FEATURE_MIG_DEVICE_STATE, &ms, sizeof(ms)) < 0) {
    ThrowErrno(env, errno, "ioctl", "VFIO_DEVICE_FEATURE MIG_DEVICE_STATE", h->path());
  }
  Napi::Object out = Napi::Object::New(env);
  if (ms.data_fd >= 0) {
    fcntl(ms.data_fd, F_SETFD, FD_CLOEXEC);  // the core opens it O_CLOEXEC; be sure
    out.Set("data", FdHandle::Create(env, ms.data_fd, h->path() + " migration data", "migration data"));
  } else {
    out.Set("data", env.Null());
  }
  out.Set("state", Napi::Number::New(env, ms.device_state));
  return out;
}

// migPrecopyInfo(dataFd) -> Buffer (struct vfio_precopy_info).
Napi::Value MigPrecopyInfo(const Napi::CallbackInfo& info) {
  FdHandle* h = ArgFd(info, 0);
  int fd = h->Require(info.Env(), "VFIO_MIG_GET_PRECOPY_INFO");
  precopy_info pi{};
  pi.argsz = sizeof(pi);
  if (Ioctl(fd, MIG_GET_PRECOPY_INFO, &pi) < 0) ThrowErrno(info.Env(), errno, "ioctl", "VFIO_MIG_GET_PRECOPY_INFO", h->path());
  return CopyOut(info.Env(), &pi, sizeof(pi));
}

// deviceDmaLoggingStart(h, pageSize, ranges: Uint8Array of n × {u64 iova, u64 length})
// -> the page size the device chose (bigint). The range array is copied to native memory.
Napi::Value DeviceDmaLoggingStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  uint64_t pageSize = ArgU64(info, 1, "pageSize");
  Bytes r = ArgBytes(info, 2, "ranges");
  if (r.length == 0 || r.length % sizeof(dma_logging_range) != 0 || r.length / sizeof(dma_logging_range) > kMaxLoggingRanges) {
    ThrowRange(env, "ranges must hold 1.." + std::to_string(kMaxLoggingRanges) + " 16-byte {iova, length} entries");
  }
  std::vector<dma_logging_range> ranges(r.length / sizeof(dma_logging_range));
  memcpy(ranges.data(), r.data, r.length);
  int fd = h->Require(env, "VFIO_DEVICE_FEATURE DMA_LOGGING_START");
  dma_logging_control c{};
  c.page_size = pageSize;
  c.num_ranges = static_cast<uint32_t>(ranges.size());
  c.ranges = reinterpret_cast<uintptr_t>(ranges.data());
  if (Feature(fd, FEATURE_SET | FEATURE_DMA_LOGGING_START, &c, sizeof(c)) < 0) {
    ThrowErrno(env, errno, "ioctl", "VFIO_DEVICE_FEATURE DMA_LOGGING_START", h->path());
  }
  return Napi::BigInt::New(env, c.page_size);
}

// deviceDmaLoggingStop(h).
Napi::Value DeviceDmaLoggingStop(const Napi::CallbackInfo& info) {
  FdHandle* h = ArgFd(info, 0);
  int fd = h->Require(info.Env(), "VFIO_DEVICE_FEATURE DMA_LOGGING_STOP");
  if (Feature(fd, FEATURE_SET | FEATURE_DMA_LOGGING_STOP, nullptr, 0) < 0) {
    ThrowErrno(info.Env(), errno, "ioctl", "VFIO_DEVICE_FEATURE DMA_LOGGING_STOP", h->path());
  }
  return info.Env().Undefined();
}

// deviceDmaLoggingReport(h, iova, length, pageSize) -> Buffer: the bitmap, one bit
// per page of [iova, iova + length), in native memory the kernel fills (and clears
// the device's log for). The size comes from the arguments and is bounded.
Napi::Value DeviceDmaLoggingReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  uint64_t iova = ArgU64(info, 1, "iova"), length = ArgU64(info, 2, "length"), pageSize = ArgU64(info, 3, "pageSize");
  if (pageSize < 4096 || (pageSize & (pageSize - 1)) != 0) ThrowRange(env, "pageSize must be a power of two of at least 4096");
  if (length == 0 || length % pageSize != 0) ThrowRange(env, "length must be a non-zero multiple of pageSize");
  uint64_t pages = length / pageSize;
  uint64_t bytes = ((pages + 63) / 64) * 8;
  if (bytes > kMaxBitmapBytes) ThrowRange(env, "the report's bitmap would exceed " + std::to_string(kMaxBitmapBytes >> 20) + " MiB: ask for a shorter range");
  std::vector<uint64_t> bitmap(bytes / 8, 0);
  int fd = h->Require(env, "VFIO_DEVICE_FEATURE DMA_LOGGING_REPORT");
  dma_logging_report rep{iova, length, pageSize, reinterpret_cast<uintptr_t>(bitmap.data())};
  if (Feature(fd, FEATURE_GET | FEATURE_DMA_LOGGING_REPORT, &rep, sizeof(rep)) < 0) {
    ThrowErrno(env, errno, "ioctl", "VFIO_DEVICE_FEATURE DMA_LOGGING_REPORT", h->path());
  }
  return CopyOut(env, bitmap.data(), bytes);
}

// --- data-fd I/O on the thread pool --------------------------------------------------
// The worker works on its own dup of the fd: closing the FdHandle meanwhile can
// neither pull the fd from under it nor let a reused fd number point it at
// another file. Buffers are the worker's own native memory.
class FdIo : public Napi::AsyncWorker {
 public:
  FdIo(Napi::Env env, int fd, bool write, std::vector<uint8_t> data, uint32_t max, std::string path)
      : Napi::AsyncWorker(env, "vfio:fdio"), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), write_(write), data_(std::move(data)),
        max_(max), path_(std::move(path)) {}
  ~FdIo() override {
    if (fd_ >= 0) close(fd_);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    if (write_) {
      size_t done = 0;
      while (done < data_.size()) {
        ssize_t r = ::write(fd_, data_.data() + done, data_.size() - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
          err_ = errno;
          break;
        }
        if (r == 0) break;
        done += static_cast<size_t>(r);
      }
      n_ = done;
    } else {
      data_.resize(max_);
      ssize_t r;
      do r = ::read(fd_, data_.data(), max_);
      while (r < 0 && errno == EINTR);
      if (r < 0) err_ = errno;
      else n_ = static_cast<size_t>(r);
    }
    close(fd_);
    fd_ = -1;
  }
  void OnOK() override {
    Napi::Env env = Env();
    // A write that failed after some bytes went through reports the error: the
    // stream is out of step either way, and the caller must know.
    if (err_ != 0) {
      Napi::Object e = MakeErrno(env, err_, write_ ? "write" : "read", write_ ? "migration data write" : "migration data read", path_);
      if (write_) e.Set("bytesWritten", Napi::Number::New(env, static_cast<double>(n_)));
      deferred_.Reject(e);
    } else if (write_) {
      deferred_.Resolve(Napi::Number::New(env, static_cast<double>(n_)));
    } else {
      deferred_.Resolve(CopyOut(env, data_.data(), n_));
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  bool write_;
  std::vector<uint8_t> data_;
  uint32_t max_;
  std::string path_;
  int err_ = 0;
  size_t n_ = 0;
};

int DupFor(Napi::Env env, FdHandle* h, const char* op) {
  int fd = h->Require(env, op);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) ThrowErrno(env, errno, "fcntl", op, h->path());
  return d;
}

// fdReadAsync(h, maxBytes) -> Promise<Buffer>: one read(2) of up to maxBytes
// (empty at end of stream).
Napi::Value FdReadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  uint32_t max = ArgU32(info, 1, "maxBytes");
  if (max == 0 || max > kMaxIoBytes) ThrowRange(env, "maxBytes must be 1.." + std::to_string(kMaxIoBytes));
  int d = DupFor(env, h, "migration data read");
  auto* w = new FdIo(env, d, false, {}, max, h->path());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// fdWriteAsync(h, bytes) -> Promise<number>: writes all of `bytes` (copied now).
Napi::Value FdWriteAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FdHandle* h = ArgFd(info, 0);
  Bytes b = ArgBytes(info, 1, "bytes");
  if (b.length > kMaxIoBytes) ThrowRange(env, "bytes must be at most " + std::to_string(kMaxIoBytes) + " long");
  std::vector<uint8_t> copy(b.data, b.data + b.length);
  int d = DupFor(env, h, "migration data write");
  auto* w = new FdIo(env, d, true, std::move(copy), 0, h->path());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void DefineMigration(Napi::Env env, Napi::Object exports) {
  DefineFunctions(env, exports, {
      {"deviceMigState", DeviceMigState},
      {"migPrecopyInfo", MigPrecopyInfo},
      {"deviceDmaLoggingStart", DeviceDmaLoggingStart},
      {"deviceDmaLoggingStop", DeviceDmaLoggingStop},
      {"deviceDmaLoggingReport", DeviceDmaLoggingReport},
      {"fdReadAsync", FdReadAsync},
      {"fdWriteAsync", FdWriteAsync},
  });
}

}  // namespace vfio
