#include "runtime/cuda/driver.h"

#include <dlfcn.h>

#include "fmt/format.h"

namespace tern::cuda {

// The driver API's types as the ABI defines them (cuda.h is not used: no
// build-time CUDA dependency). CUresult is an int, CUdevice an int.
struct Driver::Api {
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int *);
  using GetFn = int (*)(int *, int);
  using NameFn = int (*)(char *, int, int);
  using AttrFn = int (*)(int *, int, int);
  using MemFn = int (*)(size_t *, int);
  InitFn cuInit = nullptr;
  CountFn cuDeviceGetCount = nullptr;
  GetFn cuDeviceGet = nullptr;
  NameFn cuDeviceGetName = nullptr;
  AttrFn cuDeviceGetAttribute = nullptr;
  MemFn cuDeviceTotalMem = nullptr;
  int count = 0;
};

std::string cuResultName(int code) {
  switch (code) {
  case 0:
    return "CUDA_SUCCESS";
  case 3:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case 34:
    return "CUDA_ERROR_STUB_LIBRARY";
  case 35:
    return "CUDA_ERROR_INSUFFICIENT_DRIVER";
  case 1:
    return "CUDA_ERROR_INVALID_VALUE";
  case 2:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case 100:
    return "CUDA_ERROR_NO_DEVICE";
  case 200:
    return "CUDA_ERROR_INVALID_IMAGE";
  case 209:
    return "CUDA_ERROR_NO_BINARY_FOR_GPU";
  case 218:
    return "CUDA_ERROR_INVALID_PTX";
  case 222:
    return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
  case 500:
    return "CUDA_ERROR_NOT_FOUND";
  case 700:
    return "CUDA_ERROR_ILLEGAL_ADDRESS";
  case 701:
    return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
  case 719:
    return "CUDA_ERROR_LAUNCH_FAILED";
  case 101:
    return "CUDA_ERROR_INVALID_DEVICE";
  case 999:
    return "CUDA_ERROR_UNKNOWN";
  default:
    return fmt::format("CUresult {}", code);
  }
}

Driver::~Driver() {
  if (handle_)
    ::dlclose(handle_);
}

absl::StatusOr<std::unique_ptr<Driver>> Driver::open(const std::string &library) {
  std::unique_ptr<Driver> d(new Driver());
  d->handle_ = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!d->handle_) {
    const char *why = ::dlerror();
    return absl::FailedPreconditionError(
        fmt::format("no CUDA driver: dlopen({}) failed: {} (no NVIDIA driver installed; the CPU "
                    "backend is unaffected)",
                    library, why ? why : "unknown error"));
  }
  d->api_ = std::make_unique<Api>();
  Api &a = *d->api_;
  auto sym = [&](const char *name, auto &fn) -> absl::Status {
    void *p = ::dlsym(d->handle_, name);
    if (!p)
      return absl::FailedPreconditionError(fmt::format(
          "no CUDA driver: {} has no {} (not the CUDA driver library?)", library, name));
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    return absl::OkStatus();
  };
  for (absl::Status s :
       {sym("cuInit", a.cuInit), sym("cuDeviceGetCount", a.cuDeviceGetCount),
        sym("cuDeviceGet", a.cuDeviceGet), sym("cuDeviceGetName", a.cuDeviceGetName),
        sym("cuDeviceGetAttribute", a.cuDeviceGetAttribute),
        sym("cuDeviceTotalMem_v2", a.cuDeviceTotalMem)})
    if (!s.ok())
      return s;
  if (int rc = a.cuInit(0); rc != 0)
    return absl::UnavailableError(fmt::format(
        "CUDA: cuInit failed: {} ({}, from {}): no usable GPU; the CPU backend is unaffected",
        cuResultName(rc), rc, library));
  if (int rc = a.cuDeviceGetCount(&a.count); rc != 0 || a.count < 1)
    return absl::UnavailableError(fmt::format(
        "CUDA: no GPU found ({} from cuDeviceGetCount, {} devices)", cuResultName(rc), a.count));
  return d;
}

int Driver::deviceCount() const { return api_->count; }

void *Driver::symbol(const char *name) const { return ::dlsym(handle_, name); }

absl::StatusOr<std::string> Driver::describeDevice(int ordinal) const {
  const Api &a = *api_;
  int dev = 0;
  if (int rc = a.cuDeviceGet(&dev, ordinal); rc != 0)
    return absl::InvalidArgumentError(
        fmt::format("CUDA: device {}: {}", ordinal, cuResultName(rc)));
  char name[256] = {};
  int major = 0, minor = 0;
  size_t mem = 0;
  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR = 75 / 76.
  if (a.cuDeviceGetName(name, sizeof(name) - 1, dev) != 0 ||
      a.cuDeviceGetAttribute(&major, 75, dev) != 0 ||
      a.cuDeviceGetAttribute(&minor, 76, dev) != 0 || a.cuDeviceTotalMem(&mem, dev) != 0)
    return absl::InternalError(fmt::format("CUDA: cannot query device {}", ordinal));
  return fmt::format("{}, sm_{}{}, {} MiB", name, major, minor, mem >> 20);
}

} // namespace tern::cuda
