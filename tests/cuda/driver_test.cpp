// The CUDA driver opened at run time (runtime/cuda/driver.h): where there is
// no driver or no GPU it says so clearly (this machine's case; a GPU machine
// takes the other branch and describes its device).
#include <gtest/gtest.h>

#include "runtime/cuda/device.h"
#include "runtime/cuda/driver.h"

namespace tc = tern::cuda;

TEST(CudaDriver, MissingLibraryIsAClearError) {
  auto d = tc::Driver::open("libtern-no-such-cuda.so.1");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string m(d.status().message());
  EXPECT_NE(m.find("no CUDA driver: dlopen(libtern-no-such-cuda.so.1) failed"), std::string::npos)
      << m;
  EXPECT_NE(m.find("CPU backend is unaffected"), std::string::npos) << m;
}

TEST(CudaDriver, LibraryWithoutTheDriverApiIsRefused) {
  auto d = tc::Driver::open("libm.so.6");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("libm.so.6 has no cuInit"), std::string::npos)
      << d.status();
}

TEST(CudaDriver, SystemDriverOpensOrSaysWhyNot) {
  auto d = tc::Driver::open();
  if (!d.ok()) {
    const std::string m(d.status().message());
    std::printf("no GPU here: %s\n", m.c_str());
    EXPECT_TRUE(m.find("no CUDA driver") != std::string::npos ||
                m.find("cuInit failed") != std::string::npos ||
                m.find("no GPU found") != std::string::npos)
        << m;
    return;
  }
  ASSERT_GE((*d)->deviceCount(), 1);
  auto desc = (*d)->describeDevice(0);
  ASSERT_TRUE(desc.ok()) << desc.status();
  std::printf("GPU 0: %s\n", desc->c_str());
  EXPECT_NE(desc->find("sm_"), std::string::npos);
}

#ifdef TERN_CUDA_STUB_LIB
// The toolkit's stub driver: every call fails, as on a machine without a GPU.
TEST(CudaDriver, StubDriverReportsNoUsableGpu) {
  auto d = tc::Driver::open(TERN_CUDA_STUB_LIB);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
  EXPECT_NE(std::string(d.status().message()).find("cuInit failed"), std::string::npos)
      << d.status();
}
#endif

// The device of the runtime's cuda backend (device.h) over the driver: the
// same clear errors, whatever step fails.
TEST(CudaDevice, MissingDriverIsAClearError) {
  auto d = tc::openCudaDevice("libtern-no-such-cuda.so.1");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("no CUDA driver"), std::string::npos)
      << d.status();
}

#ifdef TERN_CUDA_STUB_LIB
TEST(CudaDevice, StubDriverReportsNoUsableGpu) {
  auto d = tc::openCudaDevice(TERN_CUDA_STUB_LIB);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("cuInit failed"), std::string::npos)
      << d.status();
}
#endif

TEST(CudaDevice, EmulatedDeviceCopiesAndRefusesUnknownKernels) {
  auto d = tc::openEmulatedDevice();
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->emulated());
  auto p = (*d)->alloc(1000);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*p) % 256, 0u);
  const char msg[] = "device bytes";
  char back[sizeof msg] = {};
  ASSERT_TRUE((*d)->upload(*p, msg, sizeof msg).ok());
  ASSERT_TRUE((*d)->copy(static_cast<char *>(*p) + 500, *p, sizeof msg).ok());
  ASSERT_TRUE((*d)->download(back, static_cast<char *>(*p) + 500, sizeof msg).ok());
  EXPECT_STREQ(back, msg);
  tc::LaunchDims dims;
  dims.gridX = dims.blockX = 1;
  EXPECT_FALSE((*d)->launch(99, dims, msg, 4).ok());
  tc::GpuCode none;
  EXPECT_FALSE((*d)->loadKernels(none).ok());
  (*d)->release(*p);
}
