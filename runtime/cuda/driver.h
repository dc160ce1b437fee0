// The runtime's CUDA backend, first piece: the CUDA driver API opened at run
// time with dlopen("libcuda.so.1") (no link-time CUDA dependency), a device
// found, a PTX/cubin module loaded. UNTESTED ON HARDWARE (docs/cuda.md):
// what is tested is that without a driver or GPU it says so clearly, and that
// nothing else in the runtime depends on it.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tern::cuda {

class Driver {
public:
  ~Driver();
  Driver(const Driver &) = delete;
  Driver &operator=(const Driver &) = delete;

  // Opens `library` (default: the driver's soname), resolves the entry points
  // the backend uses and initializes it (cuInit). Errors name the library and
  // the step that failed: FailedPrecondition "no CUDA driver: ..." when the
  // library is missing or lacks an entry point, Unavailable "CUDA: cuInit
  // failed: <code name> ..." when the driver has no usable GPU.
  static absl::StatusOr<std::unique_ptr<Driver>> open(const std::string &library = "libcuda.so.1");

  int deviceCount() const;
  // "<name>, sm_XY, <N> MiB" of device `ordinal`.
  absl::StatusOr<std::string> describeDevice(int ordinal) const;

  // An entry point of the opened library (dlsym), or null.
  void *symbol(const char *name) const;

  struct Api; // the resolved entry points (driver.cpp)

private:
  Driver() = default;
  void *handle_ = nullptr;
  std::unique_ptr<Api> api_;
};

// The name of a CUresult code ("CUDA_ERROR_NO_DEVICE"), or "CUresult N".
std::string cuResultName(int code);

} // namespace tern::cuda
