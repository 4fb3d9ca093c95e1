// Cheap argument guards for the raw binding. The TypeScript layer validates
// first with full messages; these keep a direct caller from passing an fd
// that JS would coerce (NaN -> 0) or a buffer that is too small.
#ifndef SOCKSTATE_ARGS_H_
#define SOCKSTATE_ARGS_H_

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace sockstate {

inline void ThrowCoded(Napi::Error error, const char* code) {
  error.Set("code", code);
  error.ThrowAsJavaScriptException();
}

// Reads info[i] as a non-negative int32 fd; throws and returns false if not.
inline bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) {
    ThrowCoded(Napi::TypeError::New(env, "fd must be a number"),
               "ERR_INVALID_ARG_TYPE");
    return false;
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= std::numeric_limits<int32_t>::max()) ||
      d != std::floor(d)) {
    ThrowCoded(Napi::RangeError::New(env, "fd must be an integer >= 0 and "
                                          "<= 2147483647"),
               "ERR_OUT_OF_RANGE");
    return false;
  }
  *fd = static_cast<int>(d);
  return true;
}

// Reads info[i] as an int32 in [lo, hi]; throws and returns false if not.
inline bool IntArg(const Napi::CallbackInfo& info, size_t i, int64_t lo,
                   int64_t hi, int* value) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) {
    ThrowCoded(Napi::TypeError::New(env, "argument must be a number"),
               "ERR_INVALID_ARG_TYPE");
    return false;
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) ||
      d != std::floor(d)) {
    ThrowCoded(Napi::RangeError::New(env, "argument out of range"),
               "ERR_OUT_OF_RANGE");
    return false;
  }
  *value = static_cast<int>(d);
  return true;
}

// Reads info[i] as an Int32Array of at least min_length elements.
inline bool Int32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                          size_t min_length, int32_t** data, size_t* length) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowCoded(Napi::TypeError::New(env, "argument must be an Int32Array"),
               "ERR_INVALID_ARG_TYPE");
    return false;
  }
  Napi::Int32Array array = info[i].As<Napi::Int32Array>();
  if (array.ElementLength() < min_length) {
    ThrowCoded(Napi::RangeError::New(env, "Int32Array is too short"),
               "ERR_OUT_OF_RANGE");
    return false;
  }
  *data = array.Data();
  *length = array.ElementLength();
  return true;
}

}  // namespace sockstate

#endif  // SOCKSTATE_ARGS_H_
