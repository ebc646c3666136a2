// Interrupt eventfds: non-blocking, close-on-exec, watched by uv_poll on this
// environment's own loop (napi_get_uv_event_loop), never the default loop.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"

namespace vfio {

Napi::Function EventFd::Define(Napi::Env env) {
  return DefineClass(env, "EventFd",
                     {
                         InstanceMethod<&EventFd::Start>("start"),
                         InstanceMethod<&EventFd::Stop>("stop"),
                         InstanceMethod<&EventFd::Ref>("ref"),
                         InstanceMethod<&EventFd::Unref>("unref"),
                         InstanceMethod<&EventFd::Read>("read"),
                         InstanceMethod<&EventFd::Signal>("signal"),
                         InstanceMethod<&EventFd::Close>("close"),
                         InstanceAccessor<&EventFd::GetFd>("fd"),
                         InstanceAccessor<&EventFd::GetClosed>("closed"),
                     });
}

EventFd::EventFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventFd>(info), env_(info.Env()) {
  if (info.Length() != 1 || !info[0].IsExternal()) ThrowType(info.Env(), "EventFd cannot be constructed from JavaScript: use eventfd()");
  // Tag first: if tagging throws (a terminating env), the object is freed
  // without its destructor, so it must not be in the set yet (ASan found a
  // use-after-free in Teardown from exactly that).
  info.This().As<Napi::Object>().TypeTag(&kEventFdTag);
  data_ = Data(info.Env());
  data_->eventfds.insert(this);
}

EventFd::~EventFd() {
  CloseNow();
  if (data_ != nullptr) data_->eventfds.erase(this);
}

Napi::Value NewEventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "eventfd", "", "");
  Napi::Object obj;
  try {
    obj = Data(env)->eventFdCtor.New({Napi::External<void>::New(env, nullptr)});
  } catch (...) {
    close(fd);
    throw;
  }
  EventFd::Unwrap(obj)->fd_ = fd;
  return obj;
}

struct ClosingPoll {
  uv_poll_t handle;
  AddonData* data;
};

void EventFd::StopPolling() {
  if (poll_ == nullptr) return;
  uv_poll_stop(poll_);
  auto* closing = reinterpret_cast<ClosingPoll*>(poll_);
  closing->data = data_;
  data_->pendingCloses++;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) {
    auto* c = reinterpret_cast<ClosingPoll*>(h);
    AddonData* d = c->data;
    delete c;
    if (--d->pendingCloses == 0 && d->tearingDown && d->cleanupHandle != nullptr) {
      napi_remove_async_cleanup_hook(d->cleanupHandle);
      d->cleanupHandle = nullptr;
    }
  });
  poll_ = nullptr;
  if (polling_) {
    polling_ = false;
    if (!data_->tearingDown) Napi::ObjectWrap<EventFd>::Unref();
  }
}

void EventFd::CloseNow() {
  StopPolling();
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (!callback_.IsEmpty() && !data_->tearingDown) callback_.Reset();
}

void EventFd::OnPoll(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<EventFd*>(handle->data);
  if (self->fd_ < 0 || self->callback_.IsEmpty()) return;
  Napi::Env env = self->env_;
  Napi::HandleScope scope(env);
  Napi::Value err = env.Null();
  double count = 0;
  if (status < 0) {
    err = Napi::String::New(env, uv_strerror(status));
  } else {
    uint64_t v = 0;
    ssize_t r;
    do r = read(self->fd_, &v, sizeof v);
    while (r < 0 && errno == EINTR);
    if (r != sizeof v) return;  // EAGAIN: someone else drained it
    count = static_cast<double>(v);
  }
  try {
    self->callback_.MakeCallback(env.Global(), {err, Napi::Number::New(env, count)});
  } catch (const Napi::Error& e) {
    // A throwing listener: report it the way Node reports errors from event callbacks.
    napi_fatal_exception(env, e.Value());
  }
}

// start(callback(err, count)): counts are the eventfd counter, so coalesced signals add up.
Napi::Value EventFd::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) ThrowClosed(env, "eventfd", "");
  if (!info[0].IsFunction()) ThrowType(env, "callback must be a function");
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (poll_ != nullptr) return env.Undefined();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) ThrowType(env, "no event loop for this environment");
  auto* c = new ClosingPoll();
  int r = uv_poll_init(loop, &c->handle, fd_);
  if (r != 0) {
    delete c;  // never initialised: nothing to close
    ThrowErrno(env, -r, "uv_poll_init", "eventfd watch", "");
  }
  poll_ = &c->handle;
  poll_->data = this;
  r = uv_poll_start(poll_, UV_READABLE, OnPoll);
  if (r != 0) {
    StopPolling();
    ThrowErrno(env, -r, "uv_poll_start", "eventfd watch", "");
  }
  if (!refed_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  polling_ = true;
  Napi::ObjectWrap<EventFd>::Ref();  // stay alive while we may call back
  return env.Undefined();
}

Napi::Value EventFd::Stop(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

Napi::Value EventFd::Ref(const Napi::CallbackInfo& info) {
  refed_ = true;
  if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value EventFd::Unref(const Napi::CallbackInfo& info) {
  refed_ = false;
  if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

// read() -> the counter (resetting it), or 0 when nothing is pending. Never blocks.
Napi::Value EventFd::Read(const Napi::CallbackInfo& info) {
  if (fd_ < 0) ThrowClosed(info.Env(), "eventfd", "");
  uint64_t v = 0;
  ssize_t r;
  do r = read(fd_, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EAGAIN) ThrowErrno(info.Env(), errno, "read", "eventfd read", "");
  return Napi::Number::New(info.Env(), r == sizeof v ? static_cast<double>(v) : 0);
}

// signal(n = 1): adds n to the counter, as the kernel does on an interrupt.
Napi::Value EventFd::Signal(const Napi::CallbackInfo& info) {
  if (fd_ < 0) ThrowClosed(info.Env(), "eventfd", "");
  uint64_t v = info.Length() > 0 && !info[0].IsUndefined() ? ArgU64(info, 0, "count") : 1;
  if (v == 0 || v == UINT64_MAX) ThrowRange(info.Env(), "count must be between 1 and 2^64-2");
  ssize_t r;
  do r = write(fd_, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  if (r != sizeof v) ThrowErrno(info.Env(), r < 0 ? errno : EIO, "write", "eventfd signal", "");
  return info.Env().Undefined();
}

Napi::Value EventFd::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}
Napi::Value EventFd::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value EventFd::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

}  // namespace vfio
