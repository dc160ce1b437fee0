#include "compiler/driver/ArtifactAssembly.h"

#include <algorithm>
#include <cstring>

#include "mlir/IR/BuiltinAttributes.h"
#include "nlohmann/json.hpp"
#include "runtime/artifact/artifact.h"
#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"
#include "runtime/support/hash.h"
#include "llvm/Support/Path.h"

namespace tern::compiler {

namespace {

nlohmann::json attrToJson(mlir::Attribute a) {
  if (auto i = llvm::dyn_cast<mlir::IntegerAttr>(a))
    return i.getInt();
  if (auto f = llvm::dyn_cast<mlir::FloatAttr>(a))
    return f.getValueAsDouble();
  if (auto s = llvm::dyn_cast<mlir::StringAttr>(a))
    return s.getValue().str();
  if (auto b = llvm::dyn_cast<mlir::BoolAttr>(a))
    return b.getValue();
  if (auto d = llvm::dyn_cast<mlir::DictionaryAttr>(a)) {
    nlohmann::json o = nlohmann::json::object();
    for (mlir::NamedAttribute n : d)
      o[n.getName().str()] = attrToJson(n.getValue());
    return o;
  }
  if (auto arr = llvm::dyn_cast<mlir::ArrayAttr>(a)) {
    nlohmann::json o = nlohmann::json::array();
    for (mlir::Attribute e : arr)
      o.push_back(attrToJson(e));
    return o;
  }
  return nullptr;
}

int64_t intAttr(mlir::ModuleOp m, llvm::StringRef name) {
  if (auto a = m->getAttrOfType<mlir::IntegerAttr>(name))
    return a.getInt();
  return -1;
}

// Source bytes hashed, copied and released per chunk.
constexpr size_t kChunk = 4u << 20;

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

} // namespace

bool writeArtifact(const ArtifactInputs &in, artifact::ArtifactOutput &out, std::string &err) {
  mlir::ModuleOp m = in.module;
  const gguf::File &file = *in.source->file;
  const std::string &sourcePath = in.source->path;
  // The source hash, from the mapping, a chunk at a time.
  const uint64_t sourceBytes = file.fileSize();
  ContentHasher sourceHasher;
  for (uint64_t at = 0; at < sourceBytes; at += kChunk) {
    std::span<const uint8_t> chunk =
        file.bytes().subspan(at, std::min<uint64_t>(kChunk, sourceBytes - at));
    sourceHasher.update(chunk);
    in.source->release(chunk);
  }
  const uint64_t sourceHash = sourceHasher.digest();

  // ---- weights: the packed blob is in place; copy the raw tensors ----
  const int64_t packedBytes = std::max<int64_t>(0, intAttr(m, "tern.packed_bytes"));
  const int64_t weightsBytes = intAttr(m, "tern.weights_bytes");
  auto layout = m->getAttrOfType<mlir::ArrayAttr>("tern.weights");
  if (weightsBytes < 0 || !layout) {
    err = "the module has no weights layout (tern.weights): run tern-lower-to-llvm";
    return false;
  }
  struct Piece {
    std::string name;
    int64_t offset, bytes;
    const uint8_t *data; // null: the packed blob, already written
  };
  std::vector<Piece> pieces;
  if (packedBytes > 0)
    pieces.push_back({"<packed>", 0, packedBytes, nullptr});
  for (mlir::Attribute a : layout) {
    auto d = llvm::cast<mlir::DictionaryAttr>(a);
    std::string name = llvm::cast<mlir::StringAttr>(d.get("name")).getValue().str();
    int64_t off = llvm::cast<mlir::IntegerAttr>(d.get("offset")).getInt();
    int64_t bytes = llvm::cast<mlir::IntegerAttr>(d.get("bytes")).getInt();
    int64_t srcOff = llvm::cast<mlir::IntegerAttr>(d.get("source_offset")).getInt();
    const gguf::TensorInfo *t = file.findTensor(name);
    if (!t || int64_t(file.dataOffset() + t->offset) != srcOff || int64_t(t->extent) < bytes) {
      err = "tensor '" + name + "' is not where the module says in '" + sourcePath + "'";
      return false;
    }
    pieces.push_back({name, off, bytes, t->data});
  }
  std::sort(pieces.begin(), pieces.end(),
            [](const Piece &a, const Piece &b) { return a.offset < b.offset; });
  for (size_t i = 0; i < pieces.size(); ++i)
    if (pieces[i].offset % TERN_ARTIFACT_ALIGN ||
        pieces[i].offset + pieces[i].bytes >
            (i + 1 < pieces.size() ? pieces[i + 1].offset : weightsBytes)) {
      err = "weights layout overlaps or is misaligned at '" + pieces[i].name + "'";
      return false;
    }
  for (const Piece &p : pieces) {
    if (!p.data)
      continue;
    for (int64_t o = 0; o < p.bytes; o += int64_t(kChunk)) {
      std::span<const uint8_t> chunk(p.data + o, size_t(std::min<int64_t>(p.bytes - o, kChunk)));
      if (absl::Status s = out.writeAt(uint64_t(p.offset + o), chunk); !s.ok()) {
        err = "writing tensor '" + p.name + "': " + s.ToString();
        return false;
      }
      in.source->release(chunk);
    }
  }
  if (absl::Status s = out.endSection(uint64_t(weightsBytes)); !s.ok()) {
    err = "weights section: " + s.ToString();
    return false;
  }

  // ---- tokenizer: the source's tokenizer.* keys + general.architecture ----
  gguf::Writer tok;
  if (const gguf::Value *arch = file.find("general.architecture"))
    tok.set("general.architecture", *arch);
  for (const gguf::KeyValue &kv : file.metadata())
    if (llvm::StringRef(kv.key).starts_with("tokenizer."))
      tok.set(kv.key, kv.value);
  auto tokBytes = tok.toBytes();
  if (!tokBytes.ok()) {
    err = "tokenizer section: " + tokBytes.status().ToString();
    return false;
  }

  // ---- metadata ----
  nlohmann::json meta = nlohmann::json::object();
  meta["format"] = "tern-artifact";
  meta["abi_version"] = TERN_ABI_VERSION;
  meta["compiler_version"] = in.compilerVersion;
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.arch"))
    meta["arch"] = a.getValue().str();
  if (auto hp = m->getAttrOfType<mlir::DictionaryAttr>("tern.hparams"))
    meta["hparams"] = attrToJson(hp);
  // The importer's resolved model configuration (runtime/model/config.h),
  // which the runtime reads instead of re-deriving it.
  if (auto mc = m->getAttrOfType<mlir::StringAttr>("tern.model_config"))
    meta["model_config"] = nlohmann::json::parse(mc.getValue().str(), nullptr, false);
  std::string actQuant = "token";
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.act_quant"))
    actQuant = a.getValue().str();
  meta["act_quant"] = actQuant;
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.head"))
    meta["head"] = a.getValue().str();
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.kv_type"))
    meta["kv_type"] = a.getValue().str();
  // ternc --decode-layout: every ternary matrix also packed in this layout,
  // read by calls of fewer than `below` tokens (each kernel record's "decode").
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.decode_layout"))
    meta["decode_layout"] = {{"layout", a.getValue().str()},
                             {"below", intAttr(m, "tern.decode_below")}};
  meta["target"] = {{"name", in.target.name},
                    {"kernel_target", in.target.kernelTarget},
                    {"triple", in.target.triple},
                    {"cpu", in.target.cpu},
                    {"features", in.target.headerFeatures},
                    {"llvm_features", in.target.features}};
  meta["kernel_option"] = in.kernelOption;
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.i2s_layout"))
    meta["i2s_layout"] = a.getValue().str();
  meta["source"] = {{"file", llvm::sys::path::filename(sourcePath).str()},
                    {"bytes", sourceBytes},
                    {"hash64", hex64(sourceHash)}};
  meta["max_batch"] = intAttr(m, "tern.max_batch");
  meta["scratch_per_token"] = intAttr(m, "tern.scratch_per_token");
  meta["scratch_fixed"] = intAttr(m, "tern.scratch_fixed");
  nlohmann::json kernels = nlohmann::json::array();
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.kernels_json")) {
    kernels = nlohmann::json::parse(a.getValue().str(), nullptr, /*allow_exceptions=*/false);
    if (kernels.is_discarded())
      kernels = nlohmann::json::array();
  }
  nlohmann::json matrices = nlohmann::json::array();
  for (const nlohmann::json &k : kernels)
    if (k.contains("layout"))
      matrices.push_back(k);
  meta["kernels"] = kernels;
  meta["matrices"] = matrices;
  // Which cost table chose each matrix's kernel (tern-select-kernels):
  // "built-in" or "tuning FILE", per weight (the first of a fused group).
  if (auto a = m->getAttrOfType<mlir::StringAttr>("tern.cost_table"))
    meta["cost_table"] = a.getValue().str();
  if (auto d = m->getAttrOfType<mlir::DictionaryAttr>("tern.kernel_sources")) {
    nlohmann::json src = nlohmann::json::object();
    for (mlir::NamedAttribute na : d)
      if (auto v = llvm::dyn_cast<mlir::StringAttr>(na.getValue()))
        src[na.getName().str()] = v.getValue().str();
    meta["kernel_sources"] = src;
  }
  nlohmann::json tensors = nlohmann::json::array();
  for (const Piece &p : pieces)
    tensors.push_back({{"name", p.name}, {"offset", p.offset}, {"bytes", p.bytes}});
  meta["weights"] = {{"bytes", weightsBytes}, {"packed_bytes", packedBytes}, {"tensors", tensors}};
  meta["code"] = {{"bytes", in.code.size()},
                  {"entry_points", {TERN_SYM_FORWARD, TERN_SYM_DESCRIBE}}};
  // cuda targets: GPU_CODE = the PTX, then (64-byte aligned) the cubin.
  std::vector<uint8_t> gpuCode;
  if (!in.ptx.empty()) {
    gpuCode.assign(in.ptx.begin(), in.ptx.end());
    nlohmann::json gpu = {{"arch", in.target.gpuArch},
                          {"ptx", {{"offset", 0}, {"bytes", in.ptx.size()}}},
                          {"untested_on_hardware", true}};
    if (!in.cubin.empty()) {
      gpuCode.resize((gpuCode.size() + 63) / 64 * 64, 0);
      gpu["cubin"] = {{"offset", gpuCode.size()}, {"bytes", in.cubin.size()}};
      gpuCode.insert(gpuCode.end(), in.cubin.begin(), in.cubin.end());
    }
    meta["gpu"] = gpu;
  }
  std::string metaText = meta.dump(1);

  artifact::HeaderFields h;
  h.targetTriple = in.target.triple;
  h.cpu = in.target.cpu;
  h.cpuFeatures = in.target.headerFeatures;
  h.compilerVersion = in.compilerVersion;
  h.sourceHash = sourceHash;
  h.sourceBytes = sourceBytes;
  absl::Status s =
      out.addSection(TERN_SECTION_METADATA,
                     std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(metaText.data()),
                                              metaText.size()));
  if (s.ok())
    s = out.addSection(TERN_SECTION_TOKENIZER, *tokBytes);
  if (s.ok())
    s = out.addSection(TERN_SECTION_CODE, in.code);
  if (s.ok() && !gpuCode.empty())
    s = out.addSection(TERN_SECTION_GPU_CODE, gpuCode);
  if (s.ok())
    s = out.commit(h);
  if (!s.ok()) {
    err = "writing the artifact: " + s.ToString();
    return false;
  }
  return true;
}

} // namespace tern::compiler
