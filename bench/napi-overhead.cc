// Where a Node-API call's time goes, for the cost section's analysis (not
// part of `npm run bench`): the same poll / TCP_INFO + poll work behind
// different argument-handling styles, and the syscalls in a C loop inside
// the Node process. Built and run by bench/napi-overhead.js.
#include <napi.h>
#include <node_api.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <cmath>
#include <cstring>
#include <limits>
static unsigned char info_buf[512];
static int32_t* cached = nullptr;
static napi_ref cached_ref = nullptr;

static int probe(int fd, int32_t* out) {
  std::memset(out, 0, 13 * 4);
  std::memset(info_buf, 0, 160);
  socklen_t len = 160;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info_buf, &len) != 0) return -errno;
  struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
  poll(&p, 1, 0);
  out[1] = info_buf[0]; out[2] = p.revents;
  return 0;
}
// sockstate's guards, verbatim in spirit
inline bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= std::numeric_limits<int32_t>::max()) || d != std::floor(d)) return false;
  *fd = static_cast<int>(d); return true;
}
inline bool Int32ArrayArg(const Napi::CallbackInfo& info, size_t i, size_t min_length, int32_t** data, size_t* length) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return false;
  Napi::Int32Array array = info[i].As<Napi::Int32Array>();
  if (array.ElementLength() < min_length) return false;
  *data = array.Data(); *length = array.ElementLength(); return true;
}
Napi::Value PollApi(const Napi::CallbackInfo& info) {
  int fd; if (!FdArg(info, 0, &fd)) return Napi::Value();
  struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0}; poll(&p, 1, 0);
  return Napi::Number::New(info.Env(), p.revents);
}
Napi::Value ProbeApi(const Napi::CallbackInfo& info) {
  int fd; int32_t* out; size_t len;
  if (!FdArg(info, 0, &fd) || !Int32ArrayArg(info, 1, 13, &out, &len)) return Napi::Value();
  return Napi::Number::New(info.Env(), probe(fd, out));
}
Napi::Value NoopArr(const Napi::CallbackInfo& info) {
  int fd; int32_t* out; size_t len;
  if (!FdArg(info, 0, &fd) || !Int32ArrayArg(info, 1, 13, &out, &len)) return Napi::Value();
  return Napi::Number::New(info.Env(), 0);
}
Napi::Value NoopFd(const Napi::CallbackInfo& info) {
  int fd; if (!FdArg(info, 0, &fd)) return Napi::Value();
  return Napi::Number::New(info.Env(), 0);
}
// plain C N-API
static napi_value PollRaw(napi_env env, napi_callback_info cbi) {
  size_t argc = 1; napi_value argv[1]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd = -1; if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return nullptr;
  struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0}; poll(&p, 1, 0);
  napi_value r; napi_create_int32(env, p.revents, &r); return r;
}
static napi_value NoopRaw(napi_env env, napi_callback_info cbi) {
  size_t argc = 1; napi_value argv[1]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd = -1; if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return nullptr;
  napi_value r; napi_create_int32(env, 0, &r); return r;
}
static napi_value ProbeOneInfo(napi_env env, napi_callback_info cbi) {
  size_t argc = 2; napi_value argv[2]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd = -1; if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return nullptr;
  bool is = false; napi_is_typedarray(env, argv[1], &is); if (!is) return nullptr;
  napi_typedarray_type t; size_t n; void* data;
  napi_get_typedarray_info(env, argv[1], &t, &n, &data, nullptr, nullptr);
  if (t != napi_int32_array || n < 13) return nullptr;
  napi_value r; napi_create_int32(env, probe(fd, static_cast<int32_t*>(data)), &r); return r;
}
static napi_value Bind(napi_env env, napi_callback_info cbi) {
  size_t argc = 1; napi_value argv[1]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  napi_typedarray_type t; size_t n; void* data;
  napi_get_typedarray_info(env, argv[0], &t, &n, &data, nullptr, nullptr);
  napi_create_reference(env, argv[0], 1, &cached_ref);
  cached = static_cast<int32_t*>(data); return nullptr;
}
static napi_value ProbeCached(napi_env env, napi_callback_info cbi) {
  size_t argc = 1; napi_value argv[1]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd = -1; if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return nullptr;
  napi_value r; napi_create_int32(env, probe(fd, cached), &r); return r;
}
static napi_value ProbeLoop(napi_env env, napi_callback_info cbi) {
  size_t argc = 2; napi_value argv[2]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd, n; napi_get_value_int32(env, argv[0], &fd); napi_get_value_int32(env, argv[1], &n);
  int32_t out[13]; long s = 0; for (int i = 0; i < n; i++) { probe(fd, out); s += out[2]; }
  napi_value r; napi_create_int32(env, (int)s, &r); return r;
}
static napi_value PollLoop(napi_env env, napi_callback_info cbi) {
  size_t argc = 2; napi_value argv[2]; napi_get_cb_info(env, cbi, &argc, argv, nullptr, nullptr);
  int32_t fd, n; napi_get_value_int32(env, argv[0], &fd); napi_get_value_int32(env, argv[1], &n);
  long s = 0; for (int i = 0; i < n; i++) { struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0}; poll(&p, 1, 0); s += p.revents; }
  napi_value r; napi_create_int32(env, (int)s, &r); return r;
}
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pollApi", Napi::Function::New(env, PollApi));
  exports.Set("probeApi", Napi::Function::New(env, ProbeApi));
  exports.Set("noopArr", Napi::Function::New(env, NoopArr));
  exports.Set("noopFd", Napi::Function::New(env, NoopFd));
  napi_value f;
#define RAW(name, fn) napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f); exports.Set(name, Napi::Value(env, f));
  RAW("pollRaw", PollRaw) RAW("noopRaw", NoopRaw) RAW("probeOneInfo", ProbeOneInfo) RAW("bind", Bind) RAW("probeCached", ProbeCached) RAW("probeLoop", ProbeLoop) RAW("pollLoop", PollLoop)
  return exports;
}
NODE_API_MODULE(exp, Init)
