// The CUDA driver device (runtime/cuda/device_cuda.cpp, driver.cpp) through
// the tests' driver double (tests/cuda/fake_libcuda.cpp: libcuda.so.1 on this
// test's LD_LIBRARY_PATH, set by ctest; docs/cuda.md, Tests). No GPU is
// involved: the double runs the launches with the emulated device's kernel
// code, so the driver path must give the emulated device's bits exactly; it
// checks what a real driver checks, and simulates a kernel missing from the
// module, cuInit failing and device memory running out.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "fmt/format.h"
#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/kernels.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/support/status.h"
#include "tests/exec/cuda_goldens.h"
#include "tests/exec/e2e_util.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

namespace fs = std::filesystem;

// Every test runs in its own process (gtest_discover_tests): the double's
// environment is set before the first Driver::open (its cuInit reads it).
void fakeEnv(const char *name, const std::string &value) { ::setenv(name, value.c_str(), 1); }

std::string readFile(const std::string &path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// The double's call log, fresh for this test.
std::string startLog(const std::string &tag) {
  const std::string log = (fs::path(TERN_E2E_DIR) / ("fake-libcuda-" + tag + ".log")).string();
  fs::create_directories(TERN_E2E_DIR);
  fs::remove(log);
  fakeEnv("TERN_FAKE_CUDA_LOG", log);
  return log;
}

absl::StatusOr<std::unique_ptr<ArtifactModel>> openOn(const std::string &tern,
                                                      const std::string &device) {
  model::ModelOptions o;
  o.contextLength = 128;
  o.device = device;
  return ArtifactModel::open(tern, o);
}

// A 36-token prefill (n >= 16: the tensor-core GEMM) then 3 decode steps
// (the dp4a GEMV, positions past 32): every step's logits.
absl::StatusOr<std::vector<std::vector<float>>> prefillAndDecode(model::Model &m) {
  const size_t vocab = size_t(m.config().nVocab);
  auto s = m.newSession();
  if (!s.ok())
    return s.status();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 36; ++i)
    prompt.push_back(int32_t(5 + 13 * i % 300));
  std::vector<std::vector<float>> out;
  out.emplace_back(vocab);
  if (absl::Status st = m.decode(**s, prompt, out.back()); !st.ok())
    return st;
  for (int32_t t : {17, 99, 254}) {
    std::vector<int32_t> one = {t};
    out.emplace_back(vocab);
    if (absl::Status st = m.decode(**s, one, out.back()); !st.ok())
      return st;
  }
  return out;
}

class FakeDriver : public ::testing::TestWithParam<CudaCase> {};

// (a) The goldens through the driver device, and the emulated device's bits.
TEST_P(FakeDriver, GoldensAndTheEmulatedDevicesBits) {
  const CudaCase &c = GetParam();
  const std::string tern = cudaArtifact(c.model, "-fake");
  ASSERT_FALSE(tern.empty());
  const std::string log = startLog(c.model);
  auto drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  EXPECT_NE((*drv)->describe().find("fake libcuda"), std::string::npos) << (*drv)->describe();
  auto emu = openOn(tern, "cuda-emulated");
  ASSERT_TRUE(emu.ok()) << statusMessage(emu.status());
  const double worst = runGoldens(**drv, c);
  auto a = prefillAndDecode(**drv);
  ASSERT_TRUE(a.ok()) << statusMessage(a.status());
  auto b = prefillAndDecode(**emu);
  ASSERT_TRUE(b.ok()) << statusMessage(b.status());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i)
    EXPECT_EQ((*a)[i], (*b)[i]) << "step " << i << ": the driver device's logits differ";
  const std::string calls = readFile(log);
  // The artifact carries the sm_90 cubin (ptxas found) or only the PTX.
  EXPECT_TRUE(calls.find("cuModuleLoadData cubin sm_90") != std::string::npos ||
              calls.find("cuModuleLoadData PTX sm_90") != std::string::npos)
      << calls.substr(0, 2000);
  EXPECT_NE(calls.find("cuLaunchKernel tern_gpu_matmul_i2s_i8_mma"), std::string::npos);
  EXPECT_NE(calls.find("cuLaunchKernel tern_gpu_matmul_i2s_i8 "), std::string::npos);
  EXPECT_NE(calls.find("cuLaunchKernel tern_gpu_attention_gqa_f16"), std::string::npos);
  std::printf("MEASURED cuda (fake driver) %s: max dp %.4f (tolerance %.2f), %llu launches\n",
              c.model, worst, c.tolerance, (unsigned long long)(*drv)->gpu()->launches());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FakeDriver, cudaFixtureCases(), cudaCaseName);

// A GPU of another major architecture (sm_100) gets the PTX (JIT), not the
// sm_90 cubin; the same bits.
TEST(FakeDriverPaths, PtxJitOnANewerGpu) {
  const std::string tern = cudaArtifact("gqa-bitnet-tq2", "-fake-ptx");
  ASSERT_FALSE(tern.empty());
  const std::string log = startLog("ptx");
  fakeEnv("TERN_FAKE_CUDA_SM", "100");
  auto drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  EXPECT_NE((*drv)->describe().find("sm_100"), std::string::npos) << (*drv)->describe();
  auto emu = openOn(tern, "cuda-emulated");
  ASSERT_TRUE(emu.ok()) << statusMessage(emu.status());
  auto a = prefillAndDecode(**drv);
  ASSERT_TRUE(a.ok()) << statusMessage(a.status());
  auto b = prefillAndDecode(**emu);
  ASSERT_TRUE(b.ok()) << statusMessage(b.status());
  EXPECT_EQ(*a, *b);
  const std::string calls = readFile(log);
  EXPECT_NE(calls.find("cuModuleLoadData PTX sm_90"), std::string::npos) << calls.substr(0, 2000);
  EXPECT_EQ(calls.find("cubin"), std::string::npos);
}

// Two sessions sharing KV blocks (a fork), both extended in one call: the
// copy-on-write is a cuMemcpyDtoD (in bounds, not overlapping); the bits are
// the emulated device's.
TEST(FakeDriverPaths, ForkCopiesBlocksWithTheDriver) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fake-fork");
  ASSERT_FALSE(tern.empty());
  const std::string log = startLog("fork");
  auto run = [](model::Model &m) -> std::vector<std::vector<float>> {
    const size_t vocab = size_t(m.config().nVocab);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 21; ++i)
      prompt.push_back(int32_t(3 + 11 * i % 340));
    std::vector<float> l(vocab), x(vocab), y(vocab);
    auto s = m.newSession();
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE(m.decode(**s, prompt, l).ok());
    auto f = m.fork(**s);
    EXPECT_TRUE(f.ok()) << statusMessage(f.status());
    std::vector<int32_t> tx = {77}, ty = {78};
    std::vector<model::BatchItem> items = {{s->get(), tx, x, {}}, {f->get(), ty, y, {}}};
    EXPECT_TRUE(m.forward(items).ok());
    for (const model::BatchItem &it : items)
      EXPECT_TRUE(it.status.ok()) << statusMessage(it.status);
    return {l, x, y};
  };
  model::ModelOptions o;
  o.contextLength = 64;
  o.parallel = 4;
  o.device = "cuda";
  auto drv = ArtifactModel::open(tern, o);
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  o.device = "cuda-emulated";
  auto emu = ArtifactModel::open(tern, o);
  ASSERT_TRUE(emu.ok()) << statusMessage(emu.status());
  const uint64_t copiesBefore = (*drv)->kvPool().stats().copies;
  EXPECT_EQ(run(**drv), run(**emu));
  EXPECT_GT((*drv)->kvPool().stats().copies, copiesBefore);
  EXPECT_NE(readFile(log).find("cuMemcpyDtoD_v2"), std::string::npos);
}

// A model opened on one thread and run on others (as the server's workers
// do): the double's current context is per thread, as CUDA's, so a call
// without its own cuCtxSetCurrent would fail.
TEST(FakeDriverPaths, OtherHostThreadsDriveTheDevice) {
  const std::string tern = cudaArtifact("tiny-bitnet-i2s", "-fake-threads");
  ASSERT_FALSE(tern.empty());
  auto drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  auto emu = openOn(tern, "cuda-emulated");
  ASSERT_TRUE(emu.ok()) << statusMessage(emu.status());
  absl::StatusOr<std::vector<std::vector<float>>> a = absl::UnknownError("not run"), b = a;
  std::thread([&] { a = prefillAndDecode(**drv); }).join();
  std::thread([&] { b = prefillAndDecode(**drv); }).join();
  ASSERT_TRUE(a.ok()) << statusMessage(a.status());
  ASSERT_TRUE(b.ok()) << statusMessage(b.status());
  auto want = prefillAndDecode(**emu);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(*a, *want);
  EXPECT_EQ(*b, *want);
}

// An sm_90 artifact on an sm_80 GPU: refused before any module is loaded.
TEST(FakeDriverPaths, KernelsForANewerGpuAreRefused) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fake-sm80");
  ASSERT_FALSE(tern.empty());
  fakeEnv("TERN_FAKE_CUDA_SM", "80");
  auto drv = openOn(tern, "cuda");
  ASSERT_FALSE(drv.ok());
  const std::string msg(drv.status().message());
  EXPECT_NE(msg.find("for sm_90, this GPU is sm_80"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--target cuda:sm_80"), std::string::npos) << msg;
}

// (b) A kernel the module lacks stays unloaded: decode (the GEMV) runs and
// gives the emulated device's bits; a prefill that needs the tensor-core GEMM
// fails naming it and saying to recompile.
TEST(FakeDriverFaults, MissingKernelFailsOnlyTheShapesThatNeedIt) {
  const std::string tern = cudaArtifact("tiny-bitnet-i2s", "-fake-missing");
  ASSERT_FALSE(tern.empty());
  fakeEnv("TERN_FAKE_CUDA_MISSING", "tern_gpu_matmul_i2s_i8_mma");
  auto drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  auto emu = openOn(tern, "cuda-emulated");
  ASSERT_TRUE(emu.ok()) << statusMessage(emu.status());
  const size_t vocab = size_t((*drv)->config().nVocab);
  std::vector<int32_t> few = {354, 111, 110, 97};
  std::vector<float> a(vocab), b(vocab);
  auto sa = (*drv)->newSession();
  auto sb = (*emu)->newSession();
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_TRUE((*drv)->decode(**sa, few, a).ok());
  ASSERT_TRUE((*emu)->decode(**sb, few, b).ok());
  EXPECT_EQ(a, b);
  std::vector<int32_t> prompt(20, 42);
  auto s = (*drv)->newSession();
  ASSERT_TRUE(s.ok());
  const absl::Status st = (*drv)->decode(**s, prompt, a);
  ASSERT_FALSE(st.ok());
  const std::string msg(st.message());
  EXPECT_NE(msg.find("tern_gpu_matmul_i2s_i8_mma"), std::string::npos) << msg;
  EXPECT_NE(msg.find("recompile"), std::string::npos) << msg;
  // The model stays usable for the shapes it can run.
  auto again = (*drv)->newSession();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*drv)->decode(**again, few, a).ok());
  EXPECT_EQ(a, b);
}

// A kernel fault (asynchronous, sticky, as on a GPU): the call fails with the
// driver's code at the next driver call, saying the context is unusable;
// the next call fails so too; nothing crashes, the model closes cleanly.
TEST(FakeDriverFaults, KernelFaultIsStickyAndClear) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fake-fault");
  ASSERT_FALSE(tern.empty());
  fakeEnv("TERN_FAKE_CUDA_FAULT", "tern_gpu_attention_gqa_f16:1");
  auto drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  const size_t vocab = size_t((*drv)->config().nVocab);
  std::vector<int32_t> few = {354, 111, 110, 97};
  std::vector<float> l(vocab);
  auto s = (*drv)->newSession();
  ASSERT_TRUE(s.ok());
  absl::Status st = (*drv)->decode(**s, few, l);
  ASSERT_FALSE(st.ok());
  std::string msg(st.message());
  EXPECT_NE(msg.find("CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unusable until the model is reopened"), std::string::npos) << msg;
  auto t = (*drv)->newSession();
  ASSERT_TRUE(t.ok());
  st = (*drv)->decode(**t, few, l);
  ASSERT_FALSE(st.ok());
  msg = std::string(st.message());
  EXPECT_NE(msg.find("CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos) << msg;
  drv->reset(); // releases memory and the context with a sticky error
  // With CUDA_LAUNCH_BLOCKING=1 the error names the faulting kernel.
  fakeEnv("CUDA_LAUNCH_BLOCKING", "1");
  drv = openOn(tern, "cuda");
  ASSERT_TRUE(drv.ok()) << statusMessage(drv.status());
  auto u = (*drv)->newSession();
  ASSERT_TRUE(u.ok());
  st = (*drv)->decode(**u, few, l);
  ASSERT_FALSE(st.ok());
  msg = std::string(st.message());
  EXPECT_NE(msg.find("cuLaunchKernel(tern_gpu_attention_gqa_f16"), std::string::npos) << msg;
}

// Runs `tern ARGS` (the binary, this test's environment); its exit status
// (128: killed by a signal) and output.
int ternCli(const std::vector<std::string> &args, const std::string &tag, std::string *out) {
  std::vector<std::string> argv = {TERN_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = (fs::path(TERN_E2E_DIR) / ("fake-cli-" + tag + ".out")).string();
  const int rc = e2e::runTool(argv, log);
  *out = readFile(log);
  return rc;
}

const std::vector<std::string> kEval = {
    "--tokens", "354,111,110,97", "--json", "--greedy", "4", "-c", "64"};

// `tern eval --device cuda` through the double prints what cuda-emulated does.
TEST(FakeDriverCli, EvalMatchesTheEmulatedDevice) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fake-cli");
  ASSERT_FALSE(tern.empty());
  std::vector<std::string> args = {"eval", tern};
  args.insert(args.end(), kEval.begin(), kEval.end());
  std::string drv, emu;
  auto withDevice = [&](const char *d) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--device", d});
    return a;
  };
  ASSERT_EQ(ternCli(withDevice("cuda"), "cuda", &drv), 0) << drv;
  ASSERT_EQ(ternCli(withDevice("cuda-emulated"), "emulated", &emu), 0) << emu;
  EXPECT_EQ(drv, emu);
}

// (c) A driver without a GPU: the documented error, a non-zero exit, no
// crash; in process, the same message.
TEST(FakeDriverFaults, CuInitFailureIsAClearError) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fake-nogpu");
  ASSERT_FALSE(tern.empty());
  fakeEnv("TERN_FAKE_CUDA_NO_DEVICE", "1");
  auto drv = openOn(tern, "cuda");
  ASSERT_FALSE(drv.ok());
  std::string msg(drv.status().message());
  EXPECT_NE(msg.find("CUDA: cuInit failed: CUDA_ERROR_NO_DEVICE"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda-emulated"), std::string::npos) << msg;
  std::vector<std::string> args = {"eval", tern, "--device", "cuda"};
  args.insert(args.end(), kEval.begin(), kEval.end());
  std::string out;
  const int rc = ternCli(args, "nogpu", &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 128) << "tern was killed by a signal: " << out;
  EXPECT_NE(out.find("CUDA: cuInit failed: CUDA_ERROR_NO_DEVICE"), std::string::npos) << out;
}

// (d) Device memory too small for the weights: the driver call, the code and
// what was being allocated.
TEST(FakeDriverFaults, OutOfMemoryOnTheWeightsIsAClearError) {
  const std::string tern = cudaArtifact("tiny-bitnet-i2s", "-fake-oom");
  ASSERT_FALSE(tern.empty());
  fakeEnv("TERN_FAKE_CUDA_MEM_MIB", "0.25"); // the weights are ~480 KiB, allocated first
  auto drv = openOn(tern, "cuda");
  ASSERT_FALSE(drv.ok());
  const std::string msg(drv.status().message());
  EXPECT_NE(msg.find("cuMemAlloc"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUDA_ERROR_OUT_OF_MEMORY"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(weights:"), std::string::npos) << msg;
  std::vector<std::string> args = {"eval", tern, "--device", "cuda"};
  args.insert(args.end(), kEval.begin(), kEval.end());
  std::string out;
  const int rc = ternCli(args, "oom", &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 128) << "tern was killed by a signal: " << out;
  EXPECT_NE(out.find("CUDA_ERROR_OUT_OF_MEMORY"), std::string::npos) << out;
}

// The double itself: it runs a kernel as the emulated device does, and fails
// what a real driver fails (so the tests above could fail).
class FakeDriverChecks : public ::testing::Test {
protected:
  void SetUp() override {
    auto d = cuda::openCudaDevice();
    ASSERT_TRUE(d.ok()) << statusMessage(d.status());
    dev = std::move(*d);
    ptx = readFile(std::string(TERN_CUDA_PTX_DIR) + "/tern-cuda-sm_90.ptx");
    ASSERT_FALSE(ptx.empty());
  }
  cuda::GpuCode code(std::string_view text) {
    cuda::GpuCode c;
    c.arch = "sm_90";
    c.ptx = {reinterpret_cast<const uint8_t *>(text.data()), text.size()};
    return c;
  }
  std::unique_ptr<cuda::Device> dev;
  std::string ptx;
};

TEST_F(FakeDriverChecks, AddRunsAsOnTheEmulatedDevice) {
  ASSERT_TRUE(dev->loadKernels(code(ptx)).ok());
  const int64_t n = 1000;
  std::vector<float> a(n), b(n), out(n, -1.f);
  for (int64_t i = 0; i < n; ++i) {
    a[size_t(i)] = 0.1f * float(i);
    b[size_t(i)] = 1.0f / float(i + 1);
  }
  auto da = dev->alloc(n * 4), db = dev->alloc(n * 4), dout = dev->alloc(n * 4);
  ASSERT_TRUE(da.ok() && db.ok() && dout.ok());
  ASSERT_TRUE(dev->upload(*da, a.data(), n * 4).ok());
  ASSERT_TRUE(dev->upload(*db, b.data(), n * 4).ok());
  cuda::ElementwiseParams p{n, static_cast<const float *>(*da), static_cast<const float *>(*db),
                            static_cast<float *>(*dout)};
  const cuda::LaunchDims d = cuda::planKernel(TERN_GPU_ADD_F32, &p, sizeof p);
  ASSERT_TRUE(d.ok()) << d.error;
  ASSERT_TRUE(dev->launch(TERN_GPU_ADD_F32, d, &p, sizeof p).ok());
  ASSERT_TRUE(dev->synchronize().ok());
  ASSERT_TRUE(dev->download(out.data(), *dout, n * 4).ok());
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out[size_t(i)], a[size_t(i)] + b[size_t(i)]) << i;
  for (void *ptr : {*da, *db, *dout})
    dev->release(ptr);
}

// Device memory is not host memory: host code that dereferences a device
// pointer faults at once (the double keeps it PROT_NONE outside its calls).
TEST_F(FakeDriverChecks, HostAccessToDeviceMemoryFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto buf = dev->alloc(64);
  ASSERT_TRUE(buf.ok());
  std::vector<uint8_t> host(64, 7);
  ASSERT_TRUE(dev->upload(*buf, host.data(), 64).ok()); // the driver's own access works
  EXPECT_DEATH(
      {
        volatile uint8_t v = *static_cast<volatile uint8_t *>(*buf);
        (void)v;
      },
      "");
  dev->release(*buf);
}

TEST_F(FakeDriverChecks, ImagesThatAreNotPtxOrCubinAreRefused) {
  const absl::Status s = dev->loadKernels(code("hello, not a GPU image"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cuModuleLoadData"), std::string::npos) << s;
  EXPECT_NE(s.message().find("CUDA_ERROR_INVALID_IMAGE"), std::string::npos) << s;
  // PTX for a GPU newer than this one.
  std::string newer = ptx;
  newer.replace(newer.find(".target sm_90"), 13, ".target sm_99");
  const absl::Status t = dev->loadKernels(code(newer));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("CUDA_ERROR_INVALID_PTX"), std::string::npos) << t;
}

TEST_F(FakeDriverChecks, LaunchesAndCopiesOverTheLimitsFail) {
  ASSERT_TRUE(dev->loadKernels(code(ptx)).ok());
  auto buf = dev->alloc(64);
  ASSERT_TRUE(buf.ok());
  std::vector<uint8_t> host(128);
  absl::Status s = dev->upload(*buf, host.data(), 128); // 64 bytes allocated
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cuMemcpyHtoD"), std::string::npos) << s;
  EXPECT_NE(s.message().find("CUDA_ERROR_INVALID_VALUE"), std::string::npos) << s;
  s = dev->download(host.data(), static_cast<uint8_t *>(*buf) + 32, 64);
  EXPECT_FALSE(s.ok());
  s = dev->upload(host.data(), host.data(), 16); // not device memory
  EXPECT_FALSE(s.ok());
  s = dev->copy(*buf, static_cast<uint8_t *>(*buf) + 8, 32); // overlapping
  EXPECT_FALSE(s.ok());
  cuda::ElementwiseParams p{16, static_cast<const float *>(*buf), static_cast<const float *>(*buf),
                            static_cast<float *>(*buf)};
  cuda::LaunchDims d;
  d.gridX = 1;
  d.gridY = 70000; // over gridDim.y's 65535
  d.blockX = 32;
  s = dev->launch(TERN_GPU_ADD_F32, d, &p, sizeof p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cuLaunchKernel(tern_gpu_add_f32"), std::string::npos) << s;
  d.gridY = 1;
  d.blockX = 2048; // over 1024 threads
  EXPECT_FALSE(dev->launch(TERN_GPU_ADD_F32, d, &p, sizeof p).ok());
  dev->release(*buf);
}

} // namespace
} // namespace tern::exec
