// A minimal artifact runner for another architecture's artifacts, built
// with a cross compiler and run under qemu (tests/exec/qemu_e2e.py): the
// runtime proper (absl, the artifact reader, the model) is not
// cross-compiled, so this reads the .tern file by the format of
// runtime/abi/tern_abi.h, dlopens its code section and calls
// tern_model_forward on one thread with a paged KV cache of its own.
//
//   qemu_runner ARTIFACT.tern PROMPTS.txt KV_ELEM_BYTES
//
// PROMPTS.txt: one prompt per line, "<n> <ids...> <m> <forced ids...>":
// the input (BOS included) is run as one batch (prefill), then m forced
// tokens one per call (decode). For every step (after the input, then after
// each forced token but the last) it prints
//   STEP <prompt> <step> <greedy pick> <p_0> ... <p_vocab-1>
// (the softmax of the logits). Exit status non-zero on any error, with a
// message naming it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "runtime/abi/tern_abi.h"

namespace {

[[noreturn]] void die(const std::string &why) {
  std::fprintf(stderr, "qemu_runner: %s\n", why.c_str());
  std::exit(1);
}

void serialFor(void *, int64_t n, int64_t, tern_range_fn fn, void *arg) {
  if (n > 0)
    fn(arg, 0, n);
}

struct Aligned {
  void *p = nullptr;
  explicit Aligned(size_t bytes) {
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
      die("out of memory");
    std::memset(p, 0, bytes ? bytes : 64);
  }
  ~Aligned() { std::free(p); }
  uint8_t *bytes() const { return static_cast<uint8_t *>(p); }
};

} // namespace

int main(int argc, char **argv) {
  if (argc != 4)
    die("usage: qemu_runner ARTIFACT.tern PROMPTS.txt KV_ELEM_BYTES");
  std::ifstream in(argv[1], std::ios::binary);
  if (!in)
    die(std::string("cannot open artifact ") + argv[1]);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), {});
  tern_artifact_header h;
  if (file.size() < sizeof h)
    die("artifact shorter than its header");
  std::memcpy(&h, file.data(), sizeof h);
  if (std::memcmp(h.magic, TERN_ARTIFACT_MAGIC, sizeof h.magic) != 0)
    die("not a .tern artifact (magic)");
  if (h.abi_version != TERN_ABI_VERSION)
    die("artifact ABI " + std::to_string(h.abi_version) + ", runner ABI " +
        std::to_string(TERN_ABI_VERSION));
  std::printf("artifact: %s cpu %s features %s\n", h.target_triple, h.cpu, h.cpu_features);
  const uint8_t *weightsSrc = nullptr, *code = nullptr;
  uint64_t weightsBytes = 0, codeBytes = 0;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    tern_artifact_section s;
    const uint64_t at = h.section_table_offset + uint64_t(i) * sizeof s;
    if (at + sizeof s > file.size())
      die("section table past the end of the file");
    std::memcpy(&s, file.data() + at, sizeof s);
    if (s.offset + s.size > file.size())
      die("section " + std::to_string(i) + " past the end of the file");
    if (s.kind == TERN_SECTION_WEIGHTS)
      weightsSrc = file.data() + s.offset, weightsBytes = s.size;
    if (s.kind == TERN_SECTION_CODE)
      code = file.data() + s.offset, codeBytes = s.size;
  }
  if (!weightsSrc || !code)
    die("artifact lacks a weights or code section");

  char soPath[] = "/tmp/tern-qemu-runner-XXXXXX";
  const int fd = mkstemp(soPath);
  if (fd < 0 || write(fd, code, codeBytes) != ssize_t(codeBytes))
    die("cannot write the code section to a temporary file");
  close(fd);
  void *so = dlopen(soPath, RTLD_NOW | RTLD_LOCAL);
  unlink(soPath);
  if (!so)
    die(std::string("dlopen of the code section failed: ") + dlerror());
  auto describe = reinterpret_cast<tern_describe_fn>(dlsym(so, "tern_model_describe"));
  auto forward = reinterpret_cast<tern_forward_fn>(dlsym(so, "tern_model_forward"));
  if (!describe || !forward)
    die("the code section does not export tern_model_describe / tern_model_forward");
  const tern_model_desc *d = describe();
  if (d->abi_version != TERN_ABI_VERSION || uint64_t(d->weights_bytes) != weightsBytes)
    die("the code's description does not match the artifact (ABI or weights size)");

  Aligned weights(weightsBytes);
  std::memcpy(weights.bytes(), weightsSrc, weightsBytes);
  const int64_t kvElem = std::atoll(argv[3]);
  if (kvElem != 2 && kvElem != 4)
    die("KV_ELEM_BYTES must be 2 (f16) or 4 (f32)");
  const int64_t pageSize = d->max_ctx % 16 == 0 ? 16 : 1;
  const int64_t pagesPerLayer = d->max_ctx / pageSize;
  const int64_t kvDim = d->n_kv_head * d->head_dim;
  const int64_t pageElems = 2 * pageSize * kvDim;
  Aligned pool(size_t(d->n_layer * pagesPerLayer * pageElems * kvElem));
  Aligned scratch(size_t(d->scratch_per_token * d->max_batch + d->scratch_fixed));
  std::vector<int32_t> pages(size_t(d->n_layer * pagesPerLayer));
  std::vector<const int32_t *> layers(size_t(d->n_layer));
  for (int64_t l = 0; l < d->n_layer; ++l) {
    for (int64_t p = 0; p < pagesPerLayer; ++p)
      pages[size_t(l * pagesPerLayer + p)] = int32_t(l * pagesPerLayer + p);
    layers[size_t(l)] = pages.data() + l * pagesPerLayer;
  }
  const int32_t *const *tables[1] = {layers.data()};

  tern_ctx ctx{};
  ctx.abi_version = TERN_ABI_VERSION;
  ctx.weights = weights.bytes();
  ctx.scratch = scratch.bytes();
  ctx.kv = {pool.p, pageElems, pageSize, 1, tables};
  ctx.parallel_for = &serialFor;
  ctx.nthreads = 1;

  std::ifstream prompts(argv[2]);
  if (!prompts)
    die(std::string("cannot open prompts file ") + argv[2]);
  std::string line;
  std::vector<float> logits(size_t(d->vocab));
  for (int prompt = 0; std::getline(prompts, line); ++prompt) {
    std::istringstream ls(line);
    int64_t n = 0, m = 0;
    ls >> n;
    std::vector<int32_t> input(static_cast<size_t>(n));
    for (int32_t &t : input)
      ls >> t;
    ls >> m;
    std::vector<int32_t> forced(static_cast<size_t>(m));
    for (int32_t &t : forced)
      ls >> t;
    if (!ls || n < 1 || n > d->max_batch)
      die("prompts line " + std::to_string(prompt + 1) + ": bad format or too many tokens");
    std::memset(pool.p, 0, size_t(d->n_layer * pagesPerLayer * pageElems * kvElem));
    int32_t pos = 0;
    std::vector<int32_t> batch = input;
    for (int64_t step = 0; step < std::max<int64_t>(m, 1); ++step) {
      std::vector<int32_t> positions(batch.size()), seq(batch.size(), 0);
      for (size_t i = 0; i < batch.size(); ++i)
        positions[i] = pos + int32_t(i);
      const int32_t outRow = int32_t(batch.size() - 1);
      tern_batch b{int64_t(batch.size()), batch.data(), positions.data(), seq.data(), 1, &outRow,
                   logits.data()};
      if (const int32_t rc = forward(&ctx, &b); rc != 0)
        die("tern_model_forward returned " + std::to_string(rc));
      pos += int32_t(batch.size());
      double mx = logits[0];
      int32_t pick = 0;
      for (int64_t v = 1; v < d->vocab; ++v)
        if (logits[size_t(v)] > mx)
          mx = logits[size_t(v)], pick = int32_t(v);
      double sum = 0;
      for (float l : logits)
        sum += std::exp(double(l) - mx);
      std::printf("STEP %d %lld %d", prompt, static_cast<long long>(step), pick);
      for (float l : logits)
        std::printf(" %.9g", std::exp(double(l) - mx) / sum);
      std::printf("\n");
      if (step >= m - 1)
        break;
      batch = {forced[size_t(step)]};
    }
  }
  dlclose(so);
  return 0;
}
