// Each concern registers its own exports; addon.cc only calls these.
#ifndef SOCKSTATE_SOCKSTATE_H_
#define SOCKSTATE_SOCKSTATE_H_

#include <napi.h>

namespace sockstate {

// probe(), poll(), probeMany() and the probe constants (probe.cc).
void InitProbe(Napi::Env env, Napi::Object exports);
// tcpInfo() and the struct layout (tcp_info.cc).
void InitTcpInfo(Napi::Env env, Napi::Object exports);
// soError(), keepalive and user-timeout options (sockopt.cc).
void InitSockopt(Napi::Env env, Napi::Object exports);
// sweepSample(), sweepProbe(), sample(), cookies(): off-thread sweeps (sweep.cc).
void InitSweep(Napi::Env env, Napi::Object exports);

}  // namespace sockstate

#endif  // SOCKSTATE_SOCKSTATE_H_
