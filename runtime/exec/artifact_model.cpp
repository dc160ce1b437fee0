#include "runtime/exec/artifact_model.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <functional>
#include <map>
#include <new>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/model/reference_model.h"
#include "runtime/model/session.h"
#include "runtime/support/status.h"
#include "runtime/ukernels/x86_cpu.h"

namespace tern::exec {

namespace {

class ArtifactSession final : public model::PagedSession {
public:
  ArtifactSession(const model::Model *owner, std::shared_ptr<model::KvPool> pool, uint32_t nLayer,
                  uint32_t tableLen)
      : PagedSession(owner, std::move(pool)), tables(nLayer, std::vector<int32_t>(tableLen, -1)),
        tablePtrs(nLayer) {
    for (uint32_t l = 0; l < nLayer; ++l)
      tablePtrs[l] = tables[l].data();
  }

  // The ABI's int32 page tables from the KV session's (after every change:
  // copy-on-write moves pages).
  void syncTables() {
    std::vector<int32_t *> ptrs(tables.size());
    for (size_t l = 0; l < tables.size(); ++l)
      ptrs[l] = tables[l].data();
    (void)kv.exportTables(ptrs, tables.empty() ? 0 : tables[0].size());
  }

  std::vector<std::vector<int32_t>> tables; // [layer][logical page] for the ABI
  std::vector<const int32_t *> tablePtrs;
};

// tern_parallel_for_fn over model::ThreadPool: `grain` items per unit, the
// units split statically over the threads. Nested calls (a ukernel calling
// parallel_for from inside a chunk) run serially (the pool's rule).
struct RangeJob {
  tern_range_fn fn;
  void *arg;
  int64_t n, grain;
};

void runRangeJob(void *p, size_t ub, size_t ue) {
  const RangeJob &j = *static_cast<const RangeJob *>(p);
  const int64_t b = int64_t(ub) * j.grain;
  const int64_t e = std::min<int64_t>(int64_t(ue) * j.grain, j.n);
  if (b < e)
    j.fn(j.arg, b, e);
}

void parallelFor(void *poolPtr, int64_t n, int64_t grain, tern_range_fn fn, void *arg) {
  if (n <= 0)
    return;
  if (grain < 1)
    grain = 1;
  auto *pool = static_cast<model::ThreadPool *>(poolPtr);
  const int64_t units = (n + grain - 1) / grain;
  if (!pool || pool->size() <= 1 || units <= 1) {
    fn(arg, 0, n);
    return;
  }
  RangeJob job{fn, arg, n, grain};
  pool->parallelFor(size_t(units), &runRangeJob, &job);
}

// One forward call as a parallel region: thread tid runs tern_model_forward
// with its own copy of the context (tid set); all return the same value.
struct RegionCall {
  tern_forward_fn forward;
  const tern_ctx *ctx;
  const tern_batch *batch;
  int32_t *rc; // [threads]
};

void regionBarrier(void *arg, int32_t) { static_cast<model::RegionBarrier *>(arg)->wait(false); }

// With a profile: thread 0's waiting counts as "waiting for workers".
void timedRegionBarrier(void *arg, int32_t tid) {
  static_cast<model::RegionBarrier *>(arg)->wait(tid == 0);
}

void runRegionThread(void *arg, int tid) {
  auto &call = *static_cast<RegionCall *>(arg);
  tern_ctx c = *call.ctx;
  c.tid = tid;
  call.rc[tid] = call.forward(&c, call.batch);
}

void collectKernels(const nlohmann::json &j, std::map<std::string, int> &out) {
  if (j.is_string()) {
    const std::string &s = j.get_ref<const std::string &>();
    if (s.rfind("tern_uk_", 0) == 0)
      ++out[s];
  } else if (j.is_object()) {
    // ternc's records: {"callee": "tern_uk_...", "fallback_from": "...", ...}:
    // only the callee runs, and with ternc --decode-layout the record's
    // "decode" {"callee": ...} for small batches.
    if (auto c = j.find("callee"); c != j.end() && c->is_string()) {
      collectKernels(*c, out);
      if (auto d = j.find("decode"); d != j.end() && d->is_object())
        collectKernels(*d, out);
      return;
    }
    for (const auto &[k, v] : j.items())
      if (k != "fallback_from")
        collectKernels(v, out);
  } else if (j.is_array()) {
    for (const auto &v : j)
      collectKernels(v, out);
  }
}

// A top-level metadata integer / string.
std::optional<int64_t> metaInt(const nlohmann::json &m, const char *name) {
  auto it = m.find(name);
  if (it != m.end() && it->is_number_integer())
    return it->get<int64_t>();
  return std::nullopt;
}
std::optional<std::string> metaStr(const nlohmann::json &m, const char *name) {
  auto it = m.find(name);
  if (it != m.end() && it->is_string())
    return it->get<std::string>();
  return std::nullopt;
}

// Loads a shared object from memory. Returns the handle and how.
absl::StatusOr<void *> loadCode(std::span<const uint8_t> code, std::string &via) {
  auto writeAll = [&](int fd) -> bool {
    size_t done = 0;
    while (done < code.size()) {
      ssize_t w = ::write(fd, code.data() + done, code.size() - done);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        return false;
      }
      done += size_t(w);
    }
    return true;
  };
  std::string memfdError;
  int fd = ::memfd_create("tern-code", MFD_CLOEXEC);
  if (fd >= 0) {
    if (writeAll(fd)) {
      // glibc matches an already loaded object by its name before opening
      // the file: "/proc/self/fd/N" of an earlier artifact whose code is
      // still loaded (another live model, or a NODELETE object) would hand
      // back THAT code. Move to an fd number whose path names nothing loaded.
      std::string p = fmt::format("/proc/self/fd/{}", fd);
      for (int tries = 0; tries < 256; ++tries) {
        void *old = ::dlopen(p.c_str(), RTLD_NOW | RTLD_NOLOAD);
        if (!old)
          break;
        ::dlclose(old);
        int nfd = ::fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
        ::close(fd);
        fd = nfd;
        if (fd < 0)
          break;
        p = fmt::format("/proc/self/fd/{}", fd);
      }
      void *h = fd >= 0 ? ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
      if (fd >= 0)
        ::close(fd);
      if (h) {
        via = "memfd";
        return h;
      }
      const char *e = fd >= 0 ? ::dlerror() : nullptr;
      memfdError = e ? e : "dlopen failed";
    } else {
      memfdError = std::strerror(errno);
      ::close(fd);
    }
  } else {
    memfdError = fmt::format("memfd_create: {}", std::strerror(errno));
  }
  // Fallback: a temporary file.
  const char *tmpdir = std::getenv("TMPDIR");
  std::string tmpl = fmt::format("{}/tern-code-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int tfd = ::mkstemp(buf.data());
  if (tfd < 0)
    return absl::InternalError(fmt::format(
        "cannot load the code section: memfd path failed ({}), and no temporary file: {}",
        memfdError, std::strerror(errno)));
  const bool ok = writeAll(tfd);
  ::close(tfd);
  void *h = ok ? ::dlopen(buf.data(), RTLD_NOW | RTLD_LOCAL) : nullptr;
  std::string dlerr;
  if (!h) {
    const char *e = ::dlerror();
    dlerr = e ? e : "write failed";
  }
  ::unlink(buf.data());
  if (!h)
    return absl::FailedPreconditionError(fmt::format(
        "cannot load the code section (dlopen): {} (memfd attempt: {})", dlerr, memfdError));
  via = "tempfile";
  return h;
}

} // namespace

ArtifactModel::~ArtifactModel() {
  kv_.reset();
  if (scratch_)
    ::operator delete[](scratch_, std::align_val_t(64));
  if (dl_)
    ::dlclose(dl_);
}

absl::StatusOr<std::unique_ptr<ArtifactModel>>
ArtifactModel::open(const std::string &path, const model::ModelOptions &options,
                    const artifact::OpenOptions &openOptions) {
  std::unique_ptr<ArtifactModel> m(new ArtifactModel());
  m->options_ = options;
  absl::StatusOr<std::unique_ptr<artifact::Artifact>> a =
      artifact::Artifact::open(path, openOptions);
  if (!a.ok())
    return a.status();
  m->artifact_ = std::move(*a);
  if (absl::Status s = m->load(openOptions); !s.ok())
    return absl::Status(s.code(), fmt::format("{}: {}", path, statusMessage(s)));
  return m;
}

absl::Status ArtifactModel::load(const artifact::OpenOptions &) {
#if defined(__x86_64__)
  // Linux hands out AMX tile state only on request (arch_prctl); code
  // compiled to rely on AMX would otherwise die of SIGILL.
  {
    const std::string f = artifact_->cpuFeatures();
    if (f.find("+amx-") != std::string::npos) {
      constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
      if (::syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
        return absl::FailedPreconditionError(
            fmt::format("the code requires AMX ({}) but the kernel refused AMX tile state "
                        "(arch_prctl ARCH_REQ_XCOMP_PERM: {})",
                        f, std::strerror(errno)));
    }
  }
#endif
  absl::StatusOr<void *> h = loadCode(artifact_->code(), loadedVia_);
  if (!h.ok())
    return h.status();
  dl_ = *h;
  auto describeFn = reinterpret_cast<tern_describe_fn>(::dlsym(dl_, TERN_SYM_DESCRIBE));
  forward_ = reinterpret_cast<tern_forward_fn>(::dlsym(dl_, TERN_SYM_FORWARD));
  if (!describeFn || !forward_)
    return absl::FailedPreconditionError(fmt::format(
        "code section does not export {}", !describeFn ? TERN_SYM_DESCRIBE : TERN_SYM_FORWARD));
  desc_ = describeFn();
  if (!desc_)
    return absl::FailedPreconditionError("tern_model_describe returned NULL");
  const tern_model_desc &d = *desc_;
  if (d.abi_version != TERN_ABI_VERSION)
    return absl::FailedPreconditionError(
        fmt::format("the code's desc->abi_version is {}, this runtime implements ABI {}: "
                    "recompile the model with this ternc",
                    d.abi_version, TERN_ABI_VERSION));
  struct Dim {
    const char *name;
    int64_t v;
    int64_t max;
  };
  for (const Dim &x : {Dim{"hidden", d.hidden, 1 << 20}, Dim{"n_layer", d.n_layer, 1 << 12},
                       Dim{"n_head", d.n_head, 1 << 12}, Dim{"n_kv_head", d.n_kv_head, 1 << 12},
                       Dim{"head_dim", d.head_dim, 1 << 14}, Dim{"ffn", d.ffn, 1 << 22},
                       Dim{"vocab", d.vocab, 1 << 30}, Dim{"max_ctx", d.max_ctx, 1 << 24},
                       Dim{"max_batch", d.max_batch, 1 << 20}})
    if (x.v <= 0 || x.v > x.max)
      return absl::FailedPreconditionError(
          fmt::format("desc->{} = {} is out of range [1, {}]", x.name, x.v, x.max));
  if (d.n_head % d.n_kv_head != 0)
    return absl::FailedPreconditionError(
        fmt::format("desc: n_head {} is not a multiple of n_kv_head {}", d.n_head, d.n_kv_head));
  if (d.scratch_per_token < 0 || d.scratch_fixed < 0 || d.scratch_per_token > (1ll << 32) ||
      d.scratch_fixed > (1ll << 36))
    return absl::FailedPreconditionError(
        fmt::format("desc scratch sizes ({} per token + {}) are out of range", d.scratch_per_token,
                    d.scratch_fixed));
  if (d.act_quant > 1)
    return absl::FailedPreconditionError(
        fmt::format("desc->act_quant = {} is unknown", d.act_quant));
  if (uint64_t(d.weights_bytes) != artifact_->weights().size())
    return absl::FailedPreconditionError(
        fmt::format("desc->weights_bytes = {} but the weights section holds {} bytes",
                    d.weights_bytes, artifact_->weights().size()));
  if (reinterpret_cast<uintptr_t>(artifact_->weights().data()) % TERN_ARTIFACT_ALIGN != 0)
    return absl::InternalError("the weights section is not 64-byte aligned in memory");

  // The resolved model configuration ternc wrote (runtime/model/config.h):
  // read, never re-derived; the code's desc must agree with it.
  const nlohmann::json &meta = artifact_->metadata();
  auto cfgIt = meta.find(model::kModelConfigKey);
  if (cfgIt == meta.end())
    return absl::FailedPreconditionError(
        fmt::format("the metadata has no '{}' (written by an older ternc: recompile the model)",
                    model::kModelConfigKey));
  absl::StatusOr<model::ModelConfig> cfg = model::modelConfigFromJson(*cfgIt);
  if (!cfg.ok())
    return absl::FailedPreconditionError(std::string(cfg.status().message()));
  config_ = std::move(*cfg);
  struct Check {
    const char *name;
    int64_t meta, desc;
  };
  const model::ModelConfig &c = config_;
  for (const Check &x :
       {Check{"hidden", c.nEmbd, d.hidden}, Check{"layers", c.nLayer, d.n_layer},
        Check{"heads", c.nHead, d.n_head}, Check{"kv_heads", c.nHeadKv, d.n_kv_head},
        Check{"head_dim", c.headDim, d.head_dim}, Check{"ffn", c.nFf, d.ffn},
        Check{"vocab", c.nVocab, d.vocab}})
    if (x.meta != x.desc)
      return absl::FailedPreconditionError(
          fmt::format("metadata {}.{} = {} but the code's desc says {}", model::kModelConfigKey,
                      x.name, x.meta, x.desc));
  for (const Check &x :
       {Check{"abi_version", 0, int64_t(d.abi_version)}, Check{"max_batch", 0, d.max_batch},
        Check{"weights_bytes", 0, d.weights_bytes}})
    if (std::optional<int64_t> mv = metaInt(meta, x.name); mv && *mv != x.desc)
      return absl::FailedPreconditionError(
          fmt::format("metadata {} = {} but the code's desc says {}", x.name, *mv, x.desc));
  if (std::optional<std::string> aq = metaStr(meta, "act_quant")) {
    const uint32_t want = (*aq == "none") ? 0u : 1u;
    if (want != d.act_quant)
      return absl::FailedPreconditionError(fmt::format(
          "metadata act_quant = \"{}\" but the code's desc->act_quant = {}", *aq, d.act_quant));
  }
  options_.actQuant = d.act_quant ? model::ActQuant::PerToken : model::ActQuant::None;
  // The LM head ternc packed (--head): "f16" (or f32, q8_0, ...) or "q8".
  head_ = metaStr(meta, "head").value_or("f16");
  options_.q8Head = head_ == "q8";
  // The KV cache's element type ternc compiled (--kv-type): the pool is
  // sized and laid out by it. Artifacts from before the option have no key
  // and attend over an f32 cache.
  {
    const std::string kt = metaStr(meta, "kv_type").value_or("f32");
    std::optional<model::KvType> t = model::parseKvType(kt);
    if (!t)
      return absl::FailedPreconditionError(
          fmt::format("metadata kv_type = \"{}\" is not f16 or f32", kt));
    options_.kvType = *t;
  }

  // Kernels.
  if (d.kernels) {
    nlohmann::json kj = nlohmann::json::parse(d.kernels, nullptr, false);
    std::map<std::string, int> use;
    if (!kj.is_discarded())
      collectKernels(kj, use);
    kernelUse_.assign(use.begin(), use.end());
  }
  if (kernelUse_.empty()) {
    std::map<std::string, int> use;
    if (auto it = meta.find("kernels"); it != meta.end())
      collectKernels(*it, use);
    kernelUse_.assign(use.begin(), use.end());
  }
  // The attention ukernels the code calls must read the cache type the pool
  // will have (a mismatch would read past the pool or misread it).
  for (const auto &[k, n] : kernelUse_) {
    const bool f16 = k.rfind("tern_uk_attention_gqa_f16_", 0) == 0;
    const bool f32 = k.rfind("tern_uk_attention_gqa_f32_", 0) == 0;
    if ((f16 && options_.kvType != model::KvType::F16) ||
        (f32 && options_.kvType != model::KvType::F32))
      return absl::FailedPreconditionError(
          fmt::format("metadata kv_type = \"{}\" but the code calls {}",
                      model::kvTypeName(options_.kvType), k));
  }
  {
    std::map<std::string, int> fb;
    std::function<void(const nlohmann::json &)> walk = [&](const nlohmann::json &j) {
      if (j.is_object()) {
        auto c = j.find("callee"), f = j.find("fallback_from"), dec = j.find("decode");
        if (c != j.end() && f != j.end() && c->is_string() && f->is_string()) {
          ++fb[f->get<std::string>() + " -> " + c->get<std::string>()];
          if (dec != j.end())
            walk(*dec);
        } else {
          for (const auto &v : j)
            walk(v);
        }
      } else if (j.is_array()) {
        for (const auto &v : j)
          walk(v);
      }
    };
    nlohmann::json kj =
        d.kernels ? nlohmann::json::parse(d.kernels, nullptr, false) : nlohmann::json();
    walk(kj.is_discarded() ? nlohmann::json() : kj);
    if (fb.empty())
      if (auto it = meta.find("kernels"); it != meta.end())
        walk(*it);
    fallbacks_.assign(fb.begin(), fb.end());
  }

  // The device (docs/cuda.md): a cuda artifact (metadata "gpu", a GPU_CODE
  // section) runs on the CUDA driver's GPU or the emulated device, a CPU
  // artifact on the CPU.
  const bool cudaArtifact = meta.contains("gpu");
  device_ = options_.device.empty() ? (cudaArtifact ? "cuda" : "cpu") : options_.device;
  const std::string target =
      (meta.contains("target") ? metaStr(meta.at("target"), "name") : std::nullopt)
          .value_or(artifact_->targetTriple());
  if (device_ != "cpu" && device_ != "cuda" && device_ != "cuda-emulated")
    return absl::InvalidArgumentError(
        fmt::format("unknown device '{}' (cpu, cuda or cuda-emulated)", device_));
  if (device_ == "cpu" && cudaArtifact)
    return absl::FailedPreconditionError(fmt::format(
        "this artifact was compiled for --target {} (GPU kernels): run it with --device cuda "
        "(or cuda-emulated), or compile the model for a CPU target",
        target));
  if (device_ != "cpu" && !cudaArtifact)
    return absl::FailedPreconditionError(
        fmt::format("--device {}: this artifact was compiled for the CPU (--target {}); compile "
                    "the model with --target cuda:sm_80 or cuda:sm_90 to run it on a GPU",
                    device_, target));

  // Context, threads, scratch, KV pool.
  ctxLen_ = options_.contextLength ? options_.contextLength
                                   : uint32_t(std::min<int64_t>(d.max_ctx, 4096));
  if (ctxLen_ > d.max_ctx)
    return absl::InvalidArgumentError(
        fmt::format("--ctx-size {} exceeds the compiled max_ctx {}", ctxLen_, d.max_ctx));
  options_.contextLength = ctxLen_;
  threads_ = std::make_unique<model::ThreadPool>(options_.threads);
  barrier_.reset(threads_->size());
  if (const char *e = std::getenv("TERN_REGION"); e && std::strcmp(e, "0") == 0)
    useRegion_ = false;
  scratchBytes_ = size_t(d.scratch_per_token * d.max_batch + d.scratch_fixed);
  scratchBytes_ = std::max<size_t>((scratchBytes_ + 63) / 64 * 64, 64);
  scratch_ =
      static_cast<uint8_t *>(::operator new[](scratchBytes_, std::align_val_t(64), std::nothrow));
  if (!scratch_)
    return absl::ResourceExhaustedError(
        fmt::format("cannot allocate {} MiB of scratch", scratchBytes_ >> 20));
  std::memset(scratch_, 0, scratchBytes_);
  absl::StatusOr<std::shared_ptr<model::KvPool>> kv =
      model::createModelPool(uint32_t(d.n_layer), uint32_t(d.n_kv_head * d.head_dim), options_);
  if (!kv.ok())
    return kv.status();
  kv_ = std::move(*kv);
  if (cudaArtifact)
    return openGpu();
  return absl::OkStatus();
}

absl::Status ArtifactModel::openGpu() {
  const nlohmann::json &g = artifact_->metadata().at("gpu");
  if (!g.is_object())
    return absl::DataLossError("metadata gpu is not an object");
  const std::span<const uint8_t> sec = artifact_->gpuCode();
  auto part = [&](const char *key, std::span<const uint8_t> &out) -> absl::Status {
    auto it = g.find(key);
    if (it == g.end())
      return absl::OkStatus();
    const uint64_t off = it->value("offset", uint64_t(0)), bytes = it->value("bytes", uint64_t(0));
    if (off > sec.size() || bytes > sec.size() - off)
      return absl::DataLossError(
          fmt::format("metadata gpu.{} [{}, {}) lies outside the {}-byte gpu_code section", key,
                      off, off + bytes, sec.size()));
    out = sec.subspan(off, bytes);
    return absl::OkStatus();
  };
  cuda::GpuCode code;
  code.arch = g.value("arch", std::string());
  if (absl::Status s = part("ptx", code.ptx); !s.ok())
    return s;
  if (absl::Status s = part("cubin", code.cubin); !s.ok())
    return s;
  if (code.ptx.empty())
    return absl::DataLossError("a cuda artifact without PTX (metadata gpu.ptx, gpu_code section)");
  absl::StatusOr<std::unique_ptr<cuda::Device>> dev =
      device_ == "cuda" ? cuda::openCudaDevice() : cuda::openEmulatedDevice();
  if (!dev.ok())
    return absl::Status(dev.status().code(),
                        fmt::format("--device {}: {} (--device cuda-emulated runs the GPU "
                                    "kernels' code on the CPU)",
                                    device_, std::string(dev.status().message())));
  const tern_model_desc &d = *desc_;
  cuda::BackendShape shape;
  shape.maxBatch = d.max_batch;
  shape.vocab = d.vocab;
  shape.nLayer = d.n_layer;
  shape.maxPages = (d.max_ctx + kv_->options().pageSize - 1) / kv_->options().pageSize;
  shape.scratchBytes = scratchBytes_;
  shape.kvBytes = kv_->blockBytes() * kv_->totalBlocks();
  absl::StatusOr<std::unique_ptr<cuda::GpuBackend>> b =
      cuda::GpuBackend::create(std::move(*dev), code, artifact_->weights(), shape);
  if (!b.ok())
    return b.status();
  gpu_ = std::move(*b);
  kv_->setBlockCopier([this](uint64_t dst, uint64_t src, uint64_t bytes) {
    if (absl::Status st = gpu_->copyKv(dst, src, bytes); !st.ok() && gpuKvError_.ok())
      gpuKvError_ = st;
  });
  return absl::OkStatus();
}

std::string ArtifactModel::kernelSummary() const {
  if (kernelUse_.empty())
    return "(the code lists no ukernels)";
  std::string s;
  for (const auto &[k, n] : kernelUse_) {
    s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", k, n);
#if defined(__x86_64__)
    // The entry picks one of two bodies by cpuid (ukernels_avx512_vnni.cpp,
    // the same check): say which one runs here.
    if (k == "tern_uk_matmul_tl2v_avx512_vnni")
      s += tern_uk_cpu_has_vbmi_gfni() ? " (tl2v body: vbmi)" : " (tl2v body: vnni)";
#endif
  }
  return s;
}

std::string ArtifactModel::describe() const {
  const tern_model_desc &d = *desc_;
  return fmt::format(
      "{} ({}, {} layers, hidden {}, vocab {}): compiled artifact, {} / cpu {} [{}], {}, "
      "act-quant {}, head {}, kv {}, max_batch {}, {} threads{}; ukernels: {}",
      artifact_->path(), config_.arch, d.n_layer, d.hidden, d.vocab, artifact_->targetTriple(),
      artifact_->cpu(), artifact_->cpuFeatures(), artifact_->compilerVersion(),
      d.act_quant ? "token" : "none", head_, model::kvTypeName(options_.kvType), d.max_batch,
      threads_->size(), gpu_ ? ", device " + gpu_->device().describe() : std::string(),
      kernelSummary());
}

absl::StatusOr<std::unique_ptr<model::Session>> ArtifactModel::newSession() {
  const uint32_t tableLen =
      uint32_t((uint64_t(desc_->max_ctx) + kv_->options().pageSize - 1) / kv_->options().pageSize);
  return std::unique_ptr<model::Session>(
      new ArtifactSession(this, kv_, uint32_t(desc_->n_layer), tableLen));
}

absl::Status ArtifactModel::truncate(model::Session &session, uint64_t positions) {
  return model::truncateSession(*this, session, positions);
}

absl::StatusOr<std::unique_ptr<model::Session>> ArtifactModel::fork(const model::Session &session) {
  absl::StatusOr<std::unique_ptr<model::Session>> s = newSession();
  if (!s.ok())
    return s.status();
  if (absl::Status st = model::forkInto(*this, session, **s); !st.ok())
    return st;
  return s;
}

model::KvUsage ArtifactModel::kvUsage() const { return model::kvUsageOf(*kv_); }

void ArtifactModel::setProfile(OpProfile *p) {
  profile_ = p;
  if (p)
    p->setWaitCounter(&barrier_.waitNsCounter()); // thread 0's waits in a region
  threads_->setTiming(p != nullptr);
}

absl::Status ArtifactModel::decode(model::Session &session, std::span<const int32_t> tokens,
                                   std::span<float> logits) {
  if (logits.size() != size_t(desc_->vocab))
    return absl::InvalidArgumentError(
        fmt::format("decode: logits buffer holds {}, vocab is {}", logits.size(), desc_->vocab));
  model::BatchItem item{&session, tokens, logits, {}};
  if (absl::Status st = forward(std::span<model::BatchItem>(&item, 1)); !st.ok())
    return st;
  return item.status;
}

absl::Status ArtifactModel::forward(std::span<model::BatchItem> items) {
  absl::StatusOr<std::vector<model::PreparedItem>> work =
      model::prepareBatch(*this, items, {uint32_t(desc_->vocab), ctxLen_, options_.prefixCache});
  if (!work.ok())
    return work.status();
  if (work->empty())
    return absl::OkStatus();

  // Sequence k of the calls is work[k]'s session.
  std::vector<const int32_t *const *> seqTables(work->size());
  for (size_t k = 0; k < work->size(); ++k) {
    auto *s = static_cast<ArtifactSession *>((*work)[k].session);
    s->syncTables();
    seqTables[k] = s->tablePtrs.data();
  }

  tern_ctx ctx;
  std::memset(&ctx, 0, sizeof ctx);
  ctx.abi_version = TERN_ABI_VERSION;
  ctx.weights = artifact_->weights().data();
  ctx.scratch = scratch_;
  ctx.kv.pool = kv_->pageK<uint8_t>(0);
  ctx.kv.page_elems = int64_t(kv_->pageElems());
  ctx.kv.page_size = kv_->options().pageSize;
  ctx.kv.n_seq = int64_t(work->size());
  ctx.kv.page_tables = seqTables.data();
  ctx.pool = threads_.get();
  ctx.parallel_for = &parallelFor;
  if (profile_) {
    ctx.profile_arg = profile_;
    ctx.profile = &OpProfile::hook;
  }
  const bool region = usesRegion();
  std::vector<int32_t> regionRc(size_t(threads_->size()), 0);
  if (region) {
    ctx.nthreads = int32_t(threads_->size());
    ctx.barrier_arg = &barrier_;
    ctx.barrier = profile_ ? &timedRegionBarrier : &regionBarrier;
  }

  const size_t maxB = size_t(desc_->max_batch), vocab = size_t(desc_->vocab);
  std::vector<int32_t> tokens, positions, seqs, outRows;
  std::vector<size_t> outItem; // work index of each output row
  tokens.reserve(maxB);
  positions.reserve(maxB);
  seqs.reserve(maxB);

  std::lock_guard<std::mutex> lock(forwardMutex_);
  // Workers spin between the ukernel calls of this forward call (no sleep
  // and wake per op; docs/runtime.md, "Thread pool").
  model::ThreadPool::HotScope hot(*threads_);
  const auto profStart = std::chrono::steady_clock::now();
  const uint64_t waitStart = profile_ ? threads_->stats().waitNs + barrier_.waitNs() : 0;
  // Items before failFrom ran completely; a failed call (never expected: the
  // batch was validated) fails the items it touched and every later one.
  size_t k = 0, off = 0; // next token: work[k].feed[off]
  absl::Status failed;
  size_t failFrom = work->size();
  while (k < work->size()) {
    tokens.clear();
    positions.clear();
    seqs.clear();
    outRows.clear();
    outItem.clear();
    const size_t firstItem = k;
    while (k < work->size() && tokens.size() < maxB) {
      const model::PreparedItem &p = (*work)[k];
      const size_t take = std::min(maxB - tokens.size(), p.feed.size() - off);
      for (size_t i = 0; i < take; ++i) {
        tokens.push_back(p.feed[off + i]);
        positions.push_back(int32_t(p.from + off + i));
        seqs.push_back(int32_t(k));
      }
      off += take;
      if (off == p.feed.size()) {
        if (!p.logits.empty()) {
          outRows.push_back(int32_t(tokens.size() - 1));
          outItem.push_back(k);
        }
        ++k;
        off = 0;
      }
    }
    // One row straight into its item's buffer; several through rowLogits_.
    float *logits = nullptr;
    if (outRows.size() == 1) {
      logits = (*work)[outItem[0]].logits.data();
    } else if (outRows.size() > 1) {
      if (rowLogits_.size() < outRows.size() * vocab)
        rowLogits_.resize(maxB * vocab);
      logits = rowLogits_.data();
    }
    tern_batch b;
    b.n = int64_t(tokens.size());
    b.tokens = tokens.data();
    b.positions = positions.data();
    b.seq = seqs.data();
    b.n_out = int64_t(outRows.size());
    b.out_rows = outRows.data();
    b.logits = logits;
    ++forwardCalls_;
    int32_t rc;
    RegionCall call{forward_, &ctx, &b, regionRc.data()};
    if (gpu_) {
      absl::Status st = gpuKvError_;
      if (st.ok())
        st = gpu_->run(forward_, ctx, b, &rc);
      if (!st.ok()) {
        failed = absl::Status(st.code(), fmt::format("{} ({} tokens of {} sessions, device {})",
                                                     std::string(st.message()), tokens.size(),
                                                     seqs.back() - seqs.front() + 1, device_));
        failFrom = firstItem;
        break;
      }
    } else if (region && threads_->region(&runRegionThread, &call)) {
      rc = call.rc[0];
    } else {
      // One thread (or a forward() from inside this pool's work): op by op.
      tern_ctx one = ctx;
      one.nthreads = 1;
      rc = forward_(&one, &b);
    }
    if (rc != 0) {
      failed = absl::InternalError(
          fmt::format("tern_model_forward failed with code {} ({} tokens of {} sessions)", rc,
                      tokens.size(), seqs.back() - seqs.front() + 1));
      failFrom = firstItem;
      break;
    }
    if (outRows.size() > 1)
      for (size_t r = 0; r < outRows.size(); ++r)
        std::memcpy((*work)[outItem[r]].logits.data(), rowLogits_.data() + r * vocab,
                    vocab * sizeof(float));
  }
  if (profile_)
    profile_->addForward(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now() - profStart)
                                      .count()),
                         threads_->stats().waitNs + barrier_.waitNs() - waitStart);
  for (size_t i = 0; i < work->size(); ++i) {
    if (i < failFrom)
      model::commitItem((*work)[i], items, options_.prefixCache);
    else
      model::failItem((*work)[i], items, failed);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<model::Model>> openModel(const std::string &path,
                                                        const model::ModelOptions &options) {
  auto endsWith = [&](const char *suf) {
    const size_t n = std::char_traits<char>::length(suf);
    return path.size() >= n && path.compare(path.size() - n, n, suf) == 0;
  };
  if (endsWith(".tern")) {
    artifact::OpenOptions oo;
    oo.verifyWeightsHash = options.verifyWeightsHash;
    using WM = model::ModelOptions::WeightsMemory;
    oo.memory = options.weightsMemory == WM::Mlock  ? artifact::OpenOptions::Memory::Mlock
                : options.weightsMemory == WM::Copy ? artifact::OpenOptions::Memory::Copy
                : options.weightsMemory == WM::Map  ? artifact::OpenOptions::Memory::Map
                                                    : artifact::OpenOptions::Memory::Auto;
    absl::StatusOr<std::unique_ptr<ArtifactModel>> m = ArtifactModel::open(path, options, oo);
    if (!m.ok())
      return m.status();
    return std::unique_ptr<model::Model>(std::move(*m));
  }
  return model::openReferenceModel(path, options);
}

} // namespace tern::exec
