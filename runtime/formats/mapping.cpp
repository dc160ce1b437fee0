#include "runtime/formats/mapping.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "fmt/format.h"
#include "runtime/support/status.h"

namespace tern::formats {
namespace {

bool endsWith(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

// The TL2 payload depends on the BK tiling of the build that wrote it: from
// every K triple packed (smallest) to every K pair packed (TL1-like, largest).
struct SizeRange {
  uint64_t lo, hi;
};
std::optional<SizeRange> sizeRange(const TypeInfo &t, std::span<const uint64_t> dims) {
  auto lo = byteSize(t, dims);
  if (!lo)
    return std::nullopt;
  if (t.rule != SizeRule::TL2)
    return SizeRange{*lo, *lo};
  uint64_t n = 1;
  for (uint64_t d : dims)
    n *= d;
  return SizeRange{*lo, (n + 3) / 4};
}

// The writer pads each tensor to the alignment; anything more means the size
// we computed is not the size the writer used. Only the last tensor may be
// followed by trailing bytes (`lenient`).
bool fits(const SizeRange &r, uint64_t extent, uint64_t alignment, bool lenient) {
  if (extent < r.lo)
    return false;
  const uint64_t hiPadded = (r.hi + alignment - 1) / alignment * alignment;
  return lenient || extent <= std::max(hiPadded, r.hi);
}

const char *nsHintFromFileType(std::optional<uint64_t> ft) {
  if (!ft)
    return nullptr;
  switch (*ft) {
  case 36:
  case 37:
    return "upstream"; // MOSTLY_TQ1_0 / MOSTLY_TQ2_0
  case 39:
  case 40:
  case 137:
    return "bitnet"; // MOSTLY_TL2 / MOSTLY_I2_S
  default:
    return nullptr;
  }
}

std::string candidateList(const std::vector<const TypeInfo *> &c) {
  std::string s;
  for (const TypeInfo *t : c)
    s += fmt::format("{}{} ({})", s.empty() ? "" : " or ", t->name, namespaceName(t->ns));
  return s;
}

// Checks that a float tensor in a ternary role holds only {-s, 0, +s}.
void checkFloatTernary(TensorMapping &m, const gguf::TensorInfo &ti) {
  const uint64_t cols = ti.dims[0];
  const uint64_t rows = ti.numElements() / cols;
  absl::StatusOr<TernaryMatrix> tm;
  const uint64_t n = ti.numElements();
  switch (m.resolved->format) {
  case Format::F32: {
    std::vector<float> v(n);
    std::memcpy(v.data(), ti.data, n * 4);
    tm = ternaryFromF32(v, rows, cols);
    break;
  }
  case Format::F16:
  case Format::BF16: {
    std::vector<uint16_t> v(n);
    std::memcpy(v.data(), ti.data, n * 2);
    tm = m.resolved->format == Format::F16 ? ternaryFromF16(v, rows, cols)
                                           : ternaryFromBF16(v, rows, cols);
    break;
  }
  default:
    m.ok = false;
    m.reason = fmt::format("{} is not a float type", m.resolved->name);
    return;
  }
  if (!tm.ok()) {
    m.ok = false;
    m.reason = fmt::format("{} in a ternary role but not ternary: {}", m.resolved->name,
                           statusMessage(tm.status()));
    return;
  }
  m.ternary = true;
  m.floatScale = tm->scales.empty() ? 0.f : tm->scales[0];
  m.ok = true;
  m.reason = fmt::format("ternary values {{-s, 0, +s}} stored as {}, s = {:g}", m.resolved->name,
                         m.floatScale);
}

void judgeRole(TensorMapping &m, const gguf::TensorInfo &ti, const MappingOptions &opts) {
  const TypeInfo &t = *m.resolved;
  if (isTernaryRole(m.role)) {
    if (ti.dims.size() != 2) {
      m.reason =
          fmt::format("{} must be a 2-D matrix, has shape {}", roleName(m.role), ti.shapeString());
      return;
    }
    switch (t.format) {
    case Format::TQ1_0:
    case Format::TQ2_0:
      m.ok = m.ternary = true;
      m.reason = fmt::format("{}: ternary, 256-weight blocks with an f16 scale each", t.name);
      return;
    case Format::I2_S:
      m.ok = m.ternary = true;
      m.i2sLayout = opts.i2sLayout;
      m.reason = fmt::format("I2_S: ternary 2-bit codes + one f32 tensor scale; {} layout "
                             "assumed",
                             i2sLayoutName(opts.i2sLayout));
      return;
    case Format::TL1:
    case Format::TL2:
      m.reason = fmt::format("{} weights are tiled by the kernel_config.ini of the bitnet.cpp "
                             "build that wrote them, which the file does not carry; re-export "
                             "the model as I2_S or TQ2_0",
                             t.name);
      return;
    case Format::F32:
    case Format::F16:
    case Format::BF16:
      if (!opts.checkFloatValues) {
        m.ok = true;
        m.reason = fmt::format("{} (values not checked)", t.name);
        return;
      }
      checkFloatTernary(m, ti);
      return;
    default:
      m.reason = fmt::format("{} ({}) in a ternary role ({}): ternc has no dequantizing kernel "
                             "for it and never reinterprets another format as ternary",
                             t.name, namespaceName(t.ns), roleName(m.role));
      return;
    }
  }
  switch (m.role) {
  case TensorRole::TokenEmbd:
  case TensorRole::Output:
    if (t.format == Format::F16 || t.format == Format::F32 || t.format == Format::BF16) {
      m.ok = true;
      m.reason =
          fmt::format("{} {}", t.name, m.role == TensorRole::Output ? "lm_head" : "embedding");
    } else {
      m.reason = fmt::format("{} for {}: only F32/F16/BF16 embeddings and heads are supported",
                             t.name, m.name);
    }
    return;
  case TensorRole::Norm:
  case TensorRole::WeightScale:
    if (t.format == Format::F32 || t.format == Format::F16) {
      m.ok = true;
      m.reason = fmt::format("{} vector", t.name);
    } else {
      m.reason = fmt::format("{} for a norm/scale vector: must be F32 or F16", t.name);
    }
    return;
  default:
    m.ok = true;
    m.reason = fmt::format("{}; not used by the BitNet graph", t.name);
    return;
  }
}

} // namespace

const char *roleName(TensorRole r) {
  switch (r) {
  case TensorRole::TokenEmbd:
    return "token_embd";
  case TensorRole::Output:
    return "output";
  case TensorRole::Norm:
    return "norm";
  case TensorRole::AttnQ:
    return "attn_q";
  case TensorRole::AttnK:
    return "attn_k";
  case TensorRole::AttnV:
    return "attn_v";
  case TensorRole::AttnOutput:
    return "attn_output";
  case TensorRole::FfnGate:
    return "ffn_gate";
  case TensorRole::FfnUp:
    return "ffn_up";
  case TensorRole::FfnDown:
    return "ffn_down";
  case TensorRole::WeightScale:
    return "weight_scale";
  case TensorRole::Unknown:
    return "unknown";
  }
  return "?";
}

TensorRole roleOf(std::string_view name, int *layer) {
  if (layer)
    *layer = -1;
  if (name == "token_embd.weight")
    return TensorRole::TokenEmbd;
  if (name == "output.weight")
    return TensorRole::Output;
  if (name == "output_norm.weight")
    return TensorRole::Norm;
  if (name.substr(0, 4) != "blk.")
    return TensorRole::Unknown;
  std::string_view rest = name.substr(4);
  int l = 0;
  size_t k = 0;
  while (k < rest.size() && rest[k] >= '0' && rest[k] <= '9' && l < 1000000)
    l = l * 10 + (rest[k++] - '0');
  if (k == 0 || k >= rest.size() || rest[k] != '.')
    return TensorRole::Unknown;
  if (layer)
    *layer = l;
  std::string_view t = rest.substr(k + 1);
  if (endsWith(t, "_scale") || endsWith(t, ".scale"))
    return TensorRole::WeightScale;
  if (!endsWith(t, ".weight"))
    return TensorRole::Unknown;
  t = t.substr(0, t.size() - 7);
  if (endsWith(t, "_norm"))
    return TensorRole::Norm;
  if (t == "attn_q")
    return TensorRole::AttnQ;
  if (t == "attn_k")
    return TensorRole::AttnK;
  if (t == "attn_v")
    return TensorRole::AttnV;
  if (t == "attn_output")
    return TensorRole::AttnOutput;
  if (t == "ffn_gate")
    return TensorRole::FfnGate;
  if (t == "ffn_up")
    return TensorRole::FfnUp;
  if (t == "ffn_down")
    return TensorRole::FfnDown;
  return TensorRole::Unknown;
}

bool isTernaryRole(TensorRole r) {
  switch (r) {
  case TensorRole::AttnQ:
  case TensorRole::AttnK:
  case TensorRole::AttnV:
  case TensorRole::AttnOutput:
  case TensorRole::FfnGate:
  case TensorRole::FfnUp:
  case TensorRole::FfnDown:
    return true;
  default:
    return false;
  }
}

bool isSupportedArch(std::string_view arch) {
  return arch == "bitnet" || arch == "bitnet-b1.58" || arch == "bitnet-25";
}

std::string fileTypeName(uint64_t ft) {
  switch (ft) {
  case 0:
    return "ALL_F32";
  case 1:
    return "MOSTLY_F16";
  case 2:
    return "MOSTLY_Q4_0";
  case 3:
    return "MOSTLY_Q4_1";
  case 7:
    return "MOSTLY_Q8_0";
  case 8:
    return "MOSTLY_Q5_0";
  case 9:
    return "MOSTLY_Q5_1";
  case 32:
    return "MOSTLY_BF16";
  case 36:
    return "MOSTLY_TQ1_0";
  case 37:
    return "MOSTLY_TQ2_0";
  case 38:
    return "MOSTLY_MXFP4_MOE (upstream) / MOSTLY_TL1 (bitnet.cpp)";
  case 39:
    return "MOSTLY_TL2 (bitnet.cpp)";
  case 40:
    return "MOSTLY_I2_S (bitnet.cpp)";
  case 137:
    return "MOSTLY_I2_S (bitnet.cpp preview)";
  default:
    return fmt::format("file type {}", ft);
  }
}

absl::Status ModelMapping::status() const {
  if (errors.empty())
    return absl::OkStatus();
  std::string m = fmt::format("quant mapping refused ({} problem{}):", errors.size(),
                              errors.size() == 1 ? "" : "s");
  for (const auto &e : errors)
    m += "\n  " + e;
  return absl::InvalidArgumentError(m);
}

const TensorMapping *ModelMapping::find(std::string_view name) const {
  for (const auto &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

ModelMapping verifyMapping(const gguf::File &file, const MappingOptions &opts) {
  ModelMapping mm;
  if (auto a = file.getString("general.architecture"))
    mm.arch = *a;
  if (mm.arch.empty())
    mm.errors.push_back("missing key 'general.architecture'");
  else if (!isSupportedArch(mm.arch))
    mm.errors.push_back(fmt::format("unsupported arch '{}' (supported: bitnet, bitnet-b1.58, "
                                    "bitnet-25)",
                                    mm.arch));
  mm.fileType = file.getUInt("general.file_type");
  if (mm.fileType)
    mm.fileTypeName = fileTypeName(*mm.fileType);
  const char *nsHint = nsHintFromFileType(mm.fileType);
  const bool bitnetArch = mm.arch == "bitnet-b1.58" || mm.arch == "bitnet-25";

  // The last tensor (by offset) may have trailing bytes after it.
  uint64_t lastOffset = 0;
  for (const auto &ti : file.tensors())
    lastOffset = std::max(lastOffset, ti.offset);

  for (const auto &ti : file.tensors()) {
    TensorMapping m;
    m.name = ti.name;
    m.role = roleOf(ti.name, &m.layer);
    m.typeId = ti.typeId;
    m.dims = ti.dims;
    m.offset = ti.offset;
    m.fileOffset = file.dataOffset() + ti.offset;
    m.extent = ti.extent;
    m.candidates = lookupId(ti.typeId);
    const bool last = ti.offset == lastOffset;

    std::vector<const TypeInfo *> fitting;
    std::vector<std::string> sizes;
    for (const TypeInfo *c : m.candidates) {
      auto r = sizeRange(*c, ti.dims);
      if (!r) {
        sizes.push_back(fmt::format("{} cannot hold shape {}", c->name, ti.shapeString()));
        continue;
      }
      sizes.push_back(r->lo == r->hi ? fmt::format("{} needs {} bytes", c->name, r->lo)
                                     : fmt::format("{} needs {}..{} bytes", c->name, r->lo, r->hi));
      if (c->rule != SizeRule::None && fits(*r, ti.extent, file.alignment(), false))
        fitting.push_back(c);
    }
    if (fitting.empty() && last) // trailing bytes after the last tensor
      for (const TypeInfo *c : m.candidates)
        if (auto r = sizeRange(*c, ti.dims);
            r && c->rule != SizeRule::None && fits(*r, ti.extent, file.alignment(), true))
          fitting.push_back(c);
    std::string sizeWhy = fmt::format("{} bytes available; {}", ti.extent, [&] {
      std::string s;
      for (const auto &x : sizes)
        s += (s.empty() ? "" : ", ") + x;
      return s;
    }());

    if (fitting.size() > 1) {
      // Same size in both readings (tiny shapes): the file's own claims decide.
      std::vector<const TypeInfo *> hinted;
      for (const TypeInfo *c : fitting) {
        const bool isBitnet = c->ns == Namespace::Bitnet;
        if ((nsHint && std::string_view(nsHint) == (isBitnet ? "bitnet" : "upstream")) ||
            (!nsHint && bitnetArch && isBitnet))
          hinted.push_back(c);
      }
      if (hinted.size() == 1)
        fitting = hinted;
    }
    if (fitting.size() == 1) {
      m.resolved = fitting[0];
      auto r = sizeRange(*m.resolved, ti.dims);
      m.bytes = r->lo == r->hi ? r->lo : std::min(ti.extent, r->hi);
      judgeRole(m, ti, opts);
      if (m.candidates.size() > 1 && m.ok)
        m.reason = fmt::format("type id {} resolved to {} by size ({}); {}", ti.typeId,
                               m.resolved->name, sizeWhy, m.reason);
      else if (m.candidates.size() > 1)
        m.reason = fmt::format("type id {} is {} by size ({}); refused: {}", ti.typeId,
                               m.resolved->name, sizeWhy, m.reason);
    } else if (fitting.empty()) {
      m.reason = fmt::format("type id {} ({}): byte size does not match: {}", ti.typeId,
                             candidateList(m.candidates), sizeWhy);
    } else {
      m.reason = fmt::format("type id {} is ambiguous: {} all fit ({}) and neither arch '{}' "
                             "nor the file type decides",
                             ti.typeId, candidateList(fitting), sizeWhy, mm.arch);
    }
    if (!m.ok)
      mm.errors.push_back(
          fmt::format("tensor '{}' (at byte {}): {}", m.name, m.fileOffset, m.reason));
    mm.tensors.push_back(std::move(m));
  }
  return mm;
}

} // namespace tern::formats
