// The GPU device interface of the runtime's cuda backend (docs/cuda.md), and
// its two implementations:
//  - the CUDA driver (openCudaDevice): libcuda.so.1 opened with dlopen at run
//    time, the kernels loaded from a cuda artifact's cubin (or PTX, JIT by the
//    driver), device memory, cuLaunchKernel with the parameter struct by
//    value, one stream. UNTESTED ON HARDWARE.
//  - the emulated device (openEmulatedDevice): host memory, every launch run
//    by emulate.h over the same kernels.h code the PTX is compiled from, so
//    CI runs whole models through the GPU kernels' logic.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/cuda/launch.h"

namespace tern::cuda {

// A cuda artifact's GPU_CODE section, split as its metadata "gpu" says.
struct GpuCode {
  std::string arch;               // "sm_80" | "sm_90"
  std::span<const uint8_t> ptx;   // text (no NUL)
  std::span<const uint8_t> cubin; // empty where ternc's build had no ptxas
};

class Device {
public:
  virtual ~Device() = default;
  // "cuda-emulated (host)" or "CUDA: <name>, sm_XY, N MiB (UNTESTED ON HARDWARE)".
  virtual std::string describe() const = 0;
  virtual bool emulated() const = 0;
  // Device memory (256-byte aligned, zeroed), released by release().
  virtual absl::StatusOr<void *> alloc(uint64_t bytes) = 0;
  virtual void release(void *p) = 0;
  // Host -> device, device -> host, device -> device. Ordered after the
  // launches queued before them; download waits for them.
  virtual absl::Status upload(void *dst, const void *src, uint64_t bytes) = 0;
  virtual absl::Status download(void *dst, const void *src, uint64_t bytes) = 0;
  virtual absl::Status copy(void *dst, const void *src, uint64_t bytes) = 0;
  // Loads the kernels (the cubin when it is for this GPU's architecture,
  // else the PTX).
  virtual absl::Status loadKernels(const GpuCode &code) = 0;
  // Queues kernel `kernel` (tern_gpu_kernel) over `dims` with its parameter
  // struct (kernels.h; `bytes` bytes, copied before it returns).
  virtual absl::Status launch(int32_t kernel, const LaunchDims &dims, const void *params,
                              uint64_t bytes) = 0;
  virtual absl::Status synchronize() = 0;
};

absl::StatusOr<std::unique_ptr<Device>> openEmulatedDevice();
// Device `ordinal` of the CUDA driver `library`. Errors as Driver::open's
// (no driver, no GPU), then naming the driver call that failed.
absl::StatusOr<std::unique_ptr<Device>> openCudaDevice(const std::string &library = "libcuda.so.1",
                                                       int ordinal = 0);

// The PTX entry point of a tern_gpu_kernel ("tern_gpu_matmul_i2s_i8"), or
// null for an id outside the enum.
const char *kernelName(int32_t kernel);
// The launch plan of kernel `kernel` for its parameter struct (`bytes` must
// be its size): launch.h's plan of the struct's shapes, or an error.
LaunchDims planKernel(int32_t kernel, const void *params, uint64_t bytes);
// The tern_gpu_kernel id of PTX entry point `name`, or -1.
int32_t kernelId(const char *name);
// The size of kernel `kernel`'s parameter struct (kernels.h), or 0 for an id
// outside the enum.
uint64_t kernelParamBytes(int32_t kernel);
// Runs a launch of kernel `kernel` over `dims` (grid x/y, block x; `params`:
// its parameter struct, kernelParamBytes(kernel) bytes) with the host
// emulation (emulate.h): what the emulated device runs, and the tests' CUDA
// driver double (tests/cuda/fake_libcuda.cpp). False for an unknown id.
bool emulateKernel(int32_t kernel, const LaunchDims &dims, const void *params);

} // namespace tern::cuda
