// The CUDA driver device (device.h). UNTESTED ON HARDWARE: no GPU has run
// this file; what CI tests is that without a driver (or with the toolkit's
// stub, a driver without a GPU) it fails with a clear message, and the whole
// file against the tests' driver double (tests/cuda/fake_libcuda.cpp:
// exec_cuda_fake_driver_test), which checks the calls as a driver would but
// runs the kernels as their host emulation.
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "fmt/format.h"
#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/driver.h"

namespace tern::cuda {

namespace {

// Driver API types as the ABI defines them (no cuda.h at build time).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void *;
using CUmodule = void *;
using CUfunction = void *;
using CUstream = void *;

struct Api {
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxSynchronize)() = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule *, const void *) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t) = nullptr;
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, CUstream, void **, void **) = nullptr;
};

CUdeviceptr dptr(const void *p) { return CUdeviceptr(reinterpret_cast<uintptr_t>(p)); }

class CudaDevice final : public Device {
public:
  ~CudaDevice() override {
    if (ctx_) {
      api_.cuCtxSetCurrent(ctx_);
      api_.cuCtxSynchronize();
      if (module_)
        api_.cuModuleUnload(module_);
      api_.cuDevicePrimaryCtxRelease(dev_);
    }
  }

  static absl::StatusOr<std::unique_ptr<Device>> open(const std::string &library, int ordinal) {
    absl::StatusOr<std::unique_ptr<Driver>> drv = Driver::open(library);
    if (!drv.ok())
      return drv.status();
    std::unique_ptr<CudaDevice> d(new CudaDevice());
    d->driver_ = std::move(*drv);
    Api &a = d->api_;
    auto sym = [&](const char *name, auto &fn) -> absl::Status {
      void *p = d->driver_->symbol(name);
      if (!p)
        return absl::FailedPreconditionError(
            fmt::format("CUDA: {} has no {} (a driver older than CUDA 11?)", library, name));
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
      return absl::OkStatus();
    };
    for (absl::Status s :
         {sym("cuDeviceGet", a.cuDeviceGet), sym("cuDeviceGetAttribute", a.cuDeviceGetAttribute),
          sym("cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain),
          sym("cuDevicePrimaryCtxRelease_v2", a.cuDevicePrimaryCtxRelease),
          sym("cuCtxSetCurrent", a.cuCtxSetCurrent), sym("cuCtxSynchronize", a.cuCtxSynchronize),
          sym("cuModuleLoadData", a.cuModuleLoadData), sym("cuModuleUnload", a.cuModuleUnload),
          sym("cuModuleGetFunction", a.cuModuleGetFunction), sym("cuMemAlloc_v2", a.cuMemAlloc),
          sym("cuMemFree_v2", a.cuMemFree), sym("cuMemsetD8_v2", a.cuMemsetD8),
          sym("cuMemcpyHtoD_v2", a.cuMemcpyHtoD), sym("cuMemcpyDtoH_v2", a.cuMemcpyDtoH),
          sym("cuMemcpyDtoD_v2", a.cuMemcpyDtoD), sym("cuLaunchKernel", a.cuLaunchKernel)})
      if (!s.ok())
        return s;
    if (ordinal < 0 || ordinal >= d->driver_->deviceCount())
      return absl::InvalidArgumentError(
          fmt::format("CUDA: no device {} ({} found)", ordinal, d->driver_->deviceCount()));
    if (absl::Status s = d->check(a.cuDeviceGet(&d->dev_, ordinal), "cuDeviceGet"); !s.ok())
      return s;
    int major = 0, minor = 0; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
    if (absl::Status s =
            d->check(a.cuDeviceGetAttribute(&major, 75, d->dev_), "cuDeviceGetAttribute");
        !s.ok())
      return s;
    if (absl::Status s =
            d->check(a.cuDeviceGetAttribute(&minor, 76, d->dev_), "cuDeviceGetAttribute");
        !s.ok())
      return s;
    d->sm_ = major * 10 + minor;
    if (absl::Status s =
            d->check(a.cuDevicePrimaryCtxRetain(&d->ctx_, d->dev_), "cuDevicePrimaryCtxRetain");
        !s.ok())
      return s;
    absl::StatusOr<std::string> desc = d->driver_->describeDevice(ordinal);
    d->gpu_ = desc.ok() ? *desc : "device";
    d->desc_ = fmt::format("CUDA: {} (UNTESTED ON HARDWARE)", d->gpu_);
    return std::unique_ptr<Device>(std::move(d));
  }

  std::string describe() const override { return desc_; }
  bool emulated() const override { return false; }

  absl::StatusOr<void *> alloc(uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    CUdeviceptr p = 0;
    // The size in bytes (a MiB count says 0 for most of a small model's
    // buffers) and what this device already holds: an out-of-memory error
    // says how much was asked of how much.
    if (absl::Status s = check(api_.cuMemAlloc(&p, size_t(bytes ? bytes : 1)),
                               fmt::format("cuMemAlloc of {} bytes ({:.1f} MiB; {:.1f} MiB "
                                           "already allocated, {})",
                                           bytes, double(bytes) / (1 << 20),
                                           double(allocated_) / (1 << 20), gpu_));
        !s.ok())
      return s;
    if (absl::Status s = check(api_.cuMemsetD8(p, 0, size_t(bytes)), "cuMemsetD8"); !s.ok()) {
      api_.cuMemFree(p);
      return s;
    }
    sizes_[p] = bytes;
    allocated_ += bytes;
    return reinterpret_cast<void *>(uintptr_t(p));
  }
  void release(void *p) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!p || !current().ok())
      return;
    api_.cuMemFree(dptr(p));
    if (auto it = sizes_.find(dptr(p)); it != sizes_.end()) {
      allocated_ -= it->second;
      sizes_.erase(it);
    }
  }
  absl::Status upload(void *dst, const void *src, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    return check(api_.cuMemcpyHtoD(dptr(dst), src, size_t(bytes)), "cuMemcpyHtoD");
  }
  absl::Status download(void *dst, const void *src, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    return check(api_.cuMemcpyDtoH(dst, dptr(src), size_t(bytes)), "cuMemcpyDtoH");
  }
  absl::Status copy(void *dst, const void *src, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    return check(api_.cuMemcpyDtoD(dptr(dst), dptr(src), size_t(bytes)), "cuMemcpyDtoD");
  }

  absl::Status loadKernels(const GpuCode &code) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    const std::string mine = fmt::format("sm_{}", sm_);
    // A cubin runs on its own architecture's major version with a minor
    // version >= its own; the PTX (ISA 7.8) is JIT-compiled by the driver
    // for any GPU of at least its target.
    const int want = std::atoi(code.arch.c_str() + (code.arch.rfind("sm_", 0) == 0 ? 3 : 0));
    if (want > sm_)
      return absl::FailedPreconditionError(
          fmt::format("CUDA: the artifact's kernels are for {}, this GPU is {}: compile with "
                      "--target cuda:{}",
                      code.arch, mine, sm_ >= 90 ? "sm_90" : "sm_80"));
    CUresult rc = -1;
    std::string from;
    if (!code.cubin.empty() && want / 10 == sm_ / 10) {
      rc = api_.cuModuleLoadData(&module_, code.cubin.data());
      from = "cubin " + code.arch;
    }
    if (rc != 0) {
      // The PTX must be NUL-terminated for cuModuleLoadData.
      ptx_.assign(code.ptx.begin(), code.ptx.end());
      ptx_.push_back('\0');
      rc = api_.cuModuleLoadData(&module_, ptx_.data());
      from = "PTX " + code.arch;
    }
    if (absl::Status s = check(rc, "cuModuleLoadData (" + from + ")"); !s.ok())
      return s;
    // A kernel the module lacks (an artifact compiled before that kernel
    // existed: its launchers never ask for it) stays null; launching it is
    // an error naming the kernel.
    constexpr CUresult kNotFound = 500; // CUDA_ERROR_NOT_FOUND
    for (int32_t k = 0; k < TERN_GPU_KERNEL_COUNT; ++k) {
      CUfunction f = nullptr;
      const CUresult got = api_.cuModuleGetFunction(&f, module_, kernelName(k));
      if (got == kNotFound)
        f = nullptr;
      else if (absl::Status s = check(got, fmt::format("cuModuleGetFunction({})", kernelName(k)));
               !s.ok())
        return s;
      functions_.push_back(f);
    }
    return absl::OkStatus();
  }

  absl::Status launch(int32_t kernel, const LaunchDims &d, const void *params,
                      uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (kernel < 0 || size_t(kernel) >= functions_.size())
      return absl::FailedPreconditionError(
          fmt::format("CUDA: kernel {} launched before the kernels were loaded", kernel));
    if (functions_[size_t(kernel)] == nullptr)
      return absl::FailedPreconditionError(
          fmt::format("CUDA: the artifact's GPU code has no kernel {}: recompile it with this "
                      "ternc",
                      kernelName(kernel)));
    if (!d.ok())
      return absl::InvalidArgumentError(
          fmt::format("CUDA: {}: {}", kernelName(kernel), d.describe()));
    if (absl::Status s = current(); !s.ok())
      return s;
    // The parameter struct by value: one kernel parameter, the driver copies
    // `bytes` bytes from the pointer at launch.
    std::vector<uint8_t> copyOf(static_cast<const uint8_t *>(params),
                                static_cast<const uint8_t *>(params) + bytes);
    void *args[] = {copyOf.data()};
    return check(api_.cuLaunchKernel(functions_[size_t(kernel)], d.gridX, d.gridY, 1, d.blockX, 1,
                                     1, 0, nullptr, args, nullptr),
                 fmt::format("cuLaunchKernel({}, {})", kernelName(kernel), d.describe()));
  }

  absl::Status synchronize() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = current(); !s.ok())
      return s;
    return check(api_.cuCtxSynchronize(), "cuCtxSynchronize (a kernel failed)");
  }

private:
  CudaDevice() = default;
  absl::Status current() { return check(api_.cuCtxSetCurrent(ctx_), "cuCtxSetCurrent"); }
  absl::Status check(CUresult rc, const std::string &what) const {
    if (rc == 0)
      return absl::OkStatus();
    // Errors a kernel leaves in the context (illegal address, misaligned
    // address, launch failure, ...: 700-799 and 999): every later call
    // fails with them until the context is destroyed.
    const bool sticky = (rc >= 700 && rc < 800 && rc != 701) || rc == 999;
    return absl::InternalError(
        fmt::format("CUDA: {} failed: {} ({}){}", what, cuResultName(rc), rc,
                    sticky ? " -- a kernel fault, in this or an earlier launch "
                             "(CUDA_LAUNCH_BLOCKING=1 reports it at the faulting one): the GPU "
                             "context is unusable until the model is reopened"
                           : ""));
  }

  std::unique_ptr<Driver> driver_;
  Api api_;
  CUdevice dev_ = 0;
  int sm_ = 0;
  CUcontext ctx_ = nullptr;
  CUmodule module_ = nullptr;
  std::vector<CUfunction> functions_; // by tern_gpu_kernel
  std::vector<char> ptx_;
  std::string gpu_, desc_;                // "<name>, sm_XY, N MiB"; describe()
  std::map<CUdeviceptr, uint64_t> sizes_; // live allocations
  uint64_t allocated_ = 0;
  std::mutex mu_;
};

} // namespace

absl::StatusOr<std::unique_ptr<Device>> openCudaDevice(const std::string &library, int ordinal) {
  return CudaDevice::open(library, ordinal);
}

} // namespace tern::cuda
