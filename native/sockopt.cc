#if defined(__linux__)

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "args.h"
#include "sockstate.h"

namespace sockstate {

namespace {

int GetInt(int fd, int level, int name, int32_t* value) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, level, name, &v, &len) != 0) return -errno;
  *value = v;
  return 0;
}

int SetInt(int fd, int level, int name, int value) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) return -errno;
  return 0;
}

// 0 for a TCP socket, else -errno: EOPNOTSUPP for any other socket (the
// kernel would accept SO_KEEPALIVE on AF_UNIX or UDP and answer the TCP
// options with EOPNOTSUPP or ENOPROTOOPT depending on the family), and
// EBADF / ENOTSOCK as setsockopt itself would give them.
int RequireTcp(int fd) {
  int32_t protocol = 0;
  int rc = GetInt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol);
  if (rc != 0) return rc;
  return protocol == IPPROTO_TCP ? 0 : -EOPNOTSUPP;
}

// soError(fd) -> pending errno (>= 0) | -errno. Reading SO_ERROR clears
// the error: only takeSocketError() calls this.
Napi::Value SoError(const Napi::CallbackInfo& info) {
  int fd;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  int32_t err = 0;
  int rc = GetInt(fd, SOL_SOCKET, SO_ERROR, &err);
  return Napi::Number::New(info.Env(), rc != 0 ? rc : err);
}

// setKeepAlive(fd, enable, idleSeconds, intervalSeconds, count) -> 0|-errno.
// TCP sockets only (-EOPNOTSUPP otherwise, also when disabling).
// The three tunables are set before SO_KEEPALIVE, so the first probe
// timer already uses them; 0 leaves a tunable unchanged.
Napi::Value SetKeepAlive(const Napi::CallbackInfo& info) {
  int fd, enable, idle, interval, count;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, 0, 1, &enable) ||
      !IntArg(info, 2, 0, 32767, &idle) ||
      !IntArg(info, 3, 0, 32767, &interval) ||
      !IntArg(info, 4, 0, 127, &count)) {
    return Napi::Value();
  }
  Napi::Env env = info.Env();
  int rc = RequireTcp(fd);
  if (rc == 0 && enable) {
    if (idle > 0) rc = SetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle);
    if (rc == 0 && interval > 0) {
      rc = SetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval);
    }
    if (rc == 0 && count > 0) rc = SetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
  }
  if (rc == 0) rc = SetInt(fd, SOL_SOCKET, SO_KEEPALIVE, enable);
  return Napi::Number::New(env, rc);
}

// getKeepAlive(fd, out: Int32Array(4)) -> 0 | -errno;
// out = [enabled, idleSeconds, intervalSeconds, count].
Napi::Value GetKeepAlive(const Napi::CallbackInfo& info) {
  int fd;
  int32_t* out;
  size_t length;
  if (!FdArg(info, 0, &fd) || !Int32ArrayArg(info, 1, 4, &out, &length)) {
    return Napi::Value();
  }
  int rc = RequireTcp(fd);
  if (rc == 0) rc = GetInt(fd, SOL_SOCKET, SO_KEEPALIVE, &out[0]);
  if (rc == 0) rc = GetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &out[1]);
  if (rc == 0) rc = GetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &out[2]);
  if (rc == 0) rc = GetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, &out[3]);
  return Napi::Number::New(info.Env(), rc);
}

// setUserTimeout(fd, ms) -> 0 | -errno. 0 restores the system default.
Napi::Value SetUserTimeout(const Napi::CallbackInfo& info) {
  int fd, ms;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, 0, INT32_MAX, &ms)) {
    return Napi::Value();
  }
  int rc = RequireTcp(fd);
  if (rc == 0) rc = SetInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, ms);
  return Napi::Number::New(info.Env(), rc);
}

// getUserTimeout(fd) -> ms (>= 0) | -errno.
Napi::Value GetUserTimeout(const Napi::CallbackInfo& info) {
  int fd;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  int32_t ms = 0;
  int rc = RequireTcp(fd);
  if (rc == 0) rc = GetInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms);
  return Napi::Number::New(info.Env(), rc != 0 ? rc : ms);
}

}  // namespace

void InitSockopt(Napi::Env env, Napi::Object exports) {
  exports.Set("soError", Napi::Function::New(env, SoError, "soError"));
  exports.Set("setKeepAlive",
              Napi::Function::New(env, SetKeepAlive, "setKeepAlive"));
  exports.Set("getKeepAlive",
              Napi::Function::New(env, GetKeepAlive, "getKeepAlive"));
  exports.Set("setUserTimeout",
              Napi::Function::New(env, SetUserTimeout, "setUserTimeout"));
  exports.Set("getUserTimeout",
              Napi::Function::New(env, GetUserTimeout, "getUserTimeout"));
}

}  // namespace sockstate

#endif  // defined(__linux__)
