// Registers the binding's exports. Everything but `platform` exists only on
// Linux; elsewhere the addon loads and says so, and the JS layer answers
// from socket flags.
#include <napi.h>

#include "sockstate.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__linux__)
  exports.Set("platformSupported", Napi::Boolean::New(env, true));
  sockstate::InitProbe(env, exports);
  sockstate::InitTcpInfo(env, exports);
  sockstate::InitSockopt(env, exports);
  sockstate::InitSweep(env, exports);
#else
  exports.Set("platformSupported", Napi::Boolean::New(env, false));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(sockstate, Init)
