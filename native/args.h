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
// One napi_get_value_double does the type check too (napi_number_expected):
// this guard sits on every probe's path.
inline bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd) {
  Napi::Env env = info.Env();
  double d = 0;
  if (info.Length() <= i ||
      napi_get_value_double(env, info[i], &d) != napi_ok) {
    ThrowCoded(Napi::TypeError::New(env, "fd must be a number"),
               "ERR_INVALID_ARG_TYPE");
    return false;
  }
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

// Reads info[i] as a typed array of `type` with at least min_length
// elements. One napi_get_typedarray_info answers type, length and data;
// napi_is_typedarray first, since the info call on anything else is an error
// status rather than a clean "no".
inline bool TypedArrayArg(const Napi::CallbackInfo& info, size_t i,
                          napi_typedarray_type type, const char* type_error,
                          size_t min_length, void** data, size_t* length) {
  Napi::Env env = info.Env();
  bool is_typed = false;
  napi_typedarray_type actual = napi_int8_array;
  size_t n = 0;
  void* p = nullptr;
  if (info.Length() <= i ||
      napi_is_typedarray(env, info[i], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, info[i], &actual, &n, &p, nullptr,
                               nullptr) != napi_ok ||
      actual != type) {
    ThrowCoded(Napi::TypeError::New(env, type_error), "ERR_INVALID_ARG_TYPE");
    return false;
  }
  if (n < min_length) {
    ThrowCoded(Napi::RangeError::New(env, "typed array is too short"),
               "ERR_OUT_OF_RANGE");
    return false;
  }
  *data = p;
  *length = n;
  return true;
}

inline bool Int32ArrayArg(const Napi::CallbackInfo& info, size_t i,
                          size_t min_length, int32_t** data, size_t* length) {
  void* p = nullptr;
  if (!TypedArrayArg(info, i, napi_int32_array,
                     "argument must be an Int32Array", min_length, &p,
                     length)) {
    return false;
  }
  *data = static_cast<int32_t*>(p);
  return true;
}

}  // namespace sockstate

#endif  // SOCKSTATE_ARGS_H_
