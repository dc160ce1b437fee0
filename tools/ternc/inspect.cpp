#include "tools/ternc/inspect.h"

#include <fstream>
#include <iomanip>
#include <ostream>

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"
#include "runtime/model/config.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"

namespace tern::inspect {
namespace {

using nlohmann::json;

json valueToJson(const gguf::Value &v) {
  using gguf::ValueType;
  switch (v.type) {
  case ValueType::STRING:
    return v.str;
  case ValueType::BOOL:
    return v.u != 0;
  case ValueType::FLOAT32:
  case ValueType::FLOAT64:
    return v.f;
  case ValueType::ARRAY: {
    // Big arrays (vocabularies) are summarised, not dumped.
    if (v.arr.size() > 16)
      return json{{"array_of", gguf::valueTypeName(v.elemType)}, {"length", v.arr.size()}};
    json a = json::array();
    for (const auto &e : v.arr)
      a.push_back(valueToJson(e));
    return a;
  }
  default:
    if (auto i = v.asInt())
      return *i;
    return v.u;
  }
}

const char *kHparams[][2] = {
    {"context_length", "context_length"},
    {"embedding_length", "embedding_length"},
    {"block_count", "block_count"},
    {"feed_forward_length", "feed_forward_length"},
    {"attention.head_count", "head_count"},
    {"attention.head_count_kv", "head_count_kv"},
    {"rope.dimension_count", "rope_dimension_count"},
    {"rope.freq_base", "rope_freq_base"},
    {"attention.layer_norm_rms_epsilon", "rms_norm_eps"},
    {"vocab_size", "vocab_size"},
};

json tokenizerSummary(const gguf::File &f) {
  json t = json::object();
  if (auto m = f.getString("tokenizer.ggml.model"))
    t["model"] = *m;
  if (auto p = f.getString("tokenizer.ggml.pre"))
    t["pre"] = *p;
  if (const auto *toks = f.find("tokenizer.ggml.tokens"))
    t["vocab_size"] = toks->arr.size();
  if (const auto *mg = f.find("tokenizer.ggml.merges"))
    t["merges"] = mg->arr.size();
  if (f.find("tokenizer.ggml.scores"))
    t["scores"] = true;
  for (const char *k : {"bos", "eos", "eot", "eom", "unknown", "padding", "sep", "mask"}) {
    if (auto id = f.getUInt(fmt::format("tokenizer.ggml.{}_token_id", k)))
      t[fmt::format("{}_id", k)] = *id;
  }
  if (const auto *ab = f.find("tokenizer.ggml.add_bos_token"))
    t["add_bos"] = ab->u != 0;
  if (const auto *ab = f.find("tokenizer.ggml.add_eos_token"))
    t["add_eos"] = ab->u != 0;
  // Special (control) tokens, counted from token_type == 3.
  if (const auto *tt = f.find("tokenizer.ggml.token_type")) {
    uint64_t control = 0;
    for (const auto &e : tt->arr)
      if (e.asInt() == 3)
        ++control;
    t["control_tokens"] = control;
  }
  if (f.find("tokenizer.chat_template"))
    t["chat_template"] = true;
  return t;
}

} // namespace

json report(const gguf::File &file, const formats::ModelMapping &mm) {
  json r;
  r["file"] = {{"path", file.path()},
               {"gguf_version", file.version()},
               {"size", file.fileSize()},
               {"alignment", file.alignment()},
               {"data_offset", file.dataOffset()},
               {"tensor_count", file.tensors().size()},
               {"metadata_count", file.metadata().size()}};
  r["arch"] = mm.arch;
  if (auto n = file.getString("general.name"))
    r["name"] = *n;
  if (mm.fileType) {
    r["file_type"] = *mm.fileType;
    r["file_type_name"] = mm.fileTypeName;
  }
  json hp = json::object();
  for (const auto &[key, name] : kHparams) {
    if (const auto *v = file.find(fmt::format("{}.{}", mm.arch, key)))
      hp[name] = valueToJson(*v);
  }
  if (hp.contains("embedding_length") && hp.contains("head_count") &&
      hp["head_count"].is_number_integer() && hp["head_count"].get<int64_t>() > 0)
    hp["head_dim"] = hp["embedding_length"].get<int64_t>() / hp["head_count"].get<int64_t>();
  if (formats::isSupportedArch(mm.arch))
    hp["ffn_activation"] = mm.arch == "bitnet" ? "silu" : "relu2";
  hp["tied_embeddings"] = file.findTensor("output.weight") == nullptr;
  r["hparams"] = hp;
  r["tokenizer"] = tokenizerSummary(file);

  json md = json::object();
  for (const auto &kv : file.metadata())
    md[kv.key] = valueToJson(kv.value);
  r["metadata"] = md;

  json ts = json::array();
  for (const auto &t : mm.tensors) {
    json cands = json::array();
    for (const auto *c : t.candidates)
      cands.push_back(fmt::format("{} ({})", c->name, formats::namespaceName(c->ns)));
    json e = {{"name", t.name},
              {"shape", t.dims},
              {"type_id", t.typeId},
              {"ggml_type", t.candidates.size() == 1 ? t.candidates[0]->name : "ambiguous"},
              {"candidates", cands},
              {"format", t.resolved ? json(t.resolved->name) : json(nullptr)},
              {"role", formats::roleName(t.role)},
              {"bytes", t.bytes},
              {"offset", t.offset},
              {"file_offset", t.fileOffset},
              {"ternary", t.ternary},
              {"ok", t.ok},
              {"reason", t.reason}};
    if (t.layer >= 0)
      e["layer"] = t.layer;
    if (t.i2sLayout)
      e["i2s_layout"] = formats::i2sLayoutName(*t.i2sLayout);
    if (t.ternary && t.floatScale != 0)
      e["scale"] = t.floatScale;
    ts.push_back(e);
  }
  r["tensors"] = ts;
  // The model configuration as every other path reads it (the importer, the
  // reference model): the same error text for a missing or bad key.
  json errors = mm.errors;
  absl::StatusOr<model::ModelConfig> config = model::readModelConfig(file);
  if (config.ok())
    r["config"] = model::toJson(*config);
  else
    errors.push_back(std::string(config.status().message()));
  r["verdict"] = {{"accepted", mm.ok() && config.ok()}, {"errors", errors}};
  return r;
}

void printText(std::ostream &os, const json &r) {
  const auto &f = r["file"];
  os << fmt::format("file      {}  (GGUF v{}, {} bytes, alignment {}, {} tensors, {} keys)\n",
                    f["path"].get<std::string>(), f["gguf_version"].get<uint32_t>(),
                    f["size"].get<uint64_t>(), f["alignment"].get<uint64_t>(),
                    f["tensor_count"].get<uint64_t>(), f["metadata_count"].get<uint64_t>());
  os << fmt::format("arch      {}{}\n", r["arch"].get<std::string>(),
                    r.contains("name") ? "  (" + r["name"].get<std::string>() + ")" : "");
  if (r.contains("file_type"))
    os << fmt::format("file type {} = {}\n", r["file_type"].get<uint64_t>(),
                      r["file_type_name"].get<std::string>());
  os << "hparams  ";
  for (const auto &[k, v] : r["hparams"].items())
    os << " " << k << "=" << v.dump();
  os << "\ntokenizer";
  for (const auto &[k, v] : r["tokenizer"].items())
    os << " " << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
  os << "\n\n";
  os << fmt::format("{:<28} {:<14} {:>7} {:<8} {:<10} {:>10} {:>10}  {}\n", "tensor", "shape",
                    "type id", "ggml", "format", "bytes", "offset", "verdict");
  for (const auto &t : r["tensors"]) {
    std::string shape = "[";
    for (size_t k = 0; k < t["shape"].size(); ++k)
      shape += (k ? "," : "") + std::to_string(t["shape"][k].get<uint64_t>());
    shape += "]";
    os << fmt::format("{:<28} {:<14} {:>7} {:<8} {:<10} {:>10} {:>10}  {}{}\n",
                      t["name"].get<std::string>(), shape, t["type_id"].get<uint32_t>(),
                      t["ggml_type"].get<std::string>(),
                      t["format"].is_null() ? "?" : t["format"].get<std::string>(),
                      t["bytes"].get<uint64_t>(), t["offset"].get<uint64_t>(),
                      t["ok"].get<bool>() ? "ok: " : "REFUSED: ", t["reason"].get<std::string>());
  }
  const auto &v = r["verdict"];
  if (v["accepted"].get<bool>()) {
    os << "\nverdict   accepted: every tensor's format is pinned down and fits its role\n";
  } else {
    os << fmt::format("\nverdict   REFUSED ({} problem{})\n", v["errors"].size(),
                      v["errors"].size() == 1 ? "" : "s");
    for (const auto &e : v["errors"])
      os << "  " << e.get<std::string>() << "\n";
  }
}

json artifactReport(const artifact::Artifact &a) {
  const json &meta = a.metadata();
  json r;
  r["file"] = {{"path", a.path()}, {"format", "tern-artifact"}, {"size", a.bytes().size()}};
  r["compiler_version"] = a.compilerVersion();
  r["target"] = meta.value("target", json::object());
  r["act_quant"] = meta.value("act_quant", "");
  r["max_batch"] = meta.value("max_batch", json());
  // The LM head's layout (ternc --head: f16 as stored, or q8); absent in
  // artifacts made before it was recorded.
  r["head"] = meta.value("head", "unrecorded");
  // The KV cache's element type (ternc --kv-type); artifacts made before it
  // was recorded attend over an f32 cache, which the runtime assumes.
  r["kv_type"] = meta.value("kv_type", "f32 (unrecorded)");
  // ternc --decode-layout: {"layout": "tl2v", "below": N}; absent without it.
  if (meta.contains("decode_layout"))
    r["decode_layout"] = meta["decode_layout"];
  // Which cost table chose the kernels (tern-select-kernels): "built-in" or
  // "tuning FILE"; per matrix in kernel_sources (absent in artifacts made
  // before it was recorded).
  r["cost_table"] = meta.value("cost_table", "unrecorded");
  const json sources = meta.value("kernel_sources", json::object());
  json ms = json::array();
  for (const json &k : meta.value("matrices", json::array())) {
    json e = k;
    std::string first;
    if (k.contains("weights") && k["weights"].is_array() && !k["weights"].empty() &&
        k["weights"][0].is_string())
      first = k["weights"][0].get<std::string>();
    e["chosen_by"] = sources.is_object() && sources.contains(first) && sources[first].is_string()
                         ? sources[first]
                         : json("unrecorded");
    ms.push_back(e);
  }
  r["matrices"] = ms;
  // cuda targets: the GPU kernels the artifact carries (GPU_CODE section).
  if (meta.contains("gpu") && meta["gpu"].is_object()) {
    json g = meta["gpu"];
    g["section_bytes"] = a.gpuCode().size();
    r["gpu"] = g;
  }
  return r;
}

void printArtifactText(std::ostream &os, const json &r) {
  os << fmt::format("file       {}  (tern artifact, {} bytes, {})\n",
                    r["file"]["path"].get<std::string>(), r["file"]["size"].get<uint64_t>(),
                    r["compiler_version"].get<std::string>());
  const json &t = r["target"];
  os << fmt::format(
      "target     {} (kernels {}, cpu {}), act-quant {}, head {}, kv-type {}, max-batch {}\n",
      t.value("name", "?"), t.value("kernel_target", "?"), t.value("cpu", "?"),
      r["act_quant"].get<std::string>(), r["head"].get<std::string>(),
      r["kv_type"].get<std::string>(), r["max_batch"].dump());
  if (r.contains("gpu")) {
    const json &g = r["gpu"];
    auto bytesOf = [&](const char *k) {
      return g.contains(k) ? fmt::format("{} bytes", g[k].value("bytes", uint64_t(0)))
                           : std::string("none (no ptxas at build time)");
    };
    os << fmt::format("gpu code   {}: PTX {}, cubin {} (UNTESTED ON HARDWARE)\n",
                      g.value("arch", "?"), bytesOf("ptx"), bytesOf("cubin"));
  }
  os << fmt::format("cost table {}\n", r["cost_table"].get<std::string>());
  if (r.contains("decode_layout") && r["decode_layout"].is_object())
    os << fmt::format("decode     {} copy of every ternary matrix, read by calls of fewer than {} "
                      "tokens (--decode-layout)\n",
                      r["decode_layout"].value("layout", "?"),
                      r["decode_layout"].value("below", int64_t(0)));
  os << "\n";
  os << fmt::format("{:<28} {:<6} {:>7} {:>7} {:>10}  {:<40} {}\n", "matrix", "layout", "m", "k",
                    "tile", "callee", "chosen by");
  for (const json &m : r["matrices"]) {
    std::string names;
    for (const json &w : m.value("weights", json::array()))
      names += (names.empty() ? "" : "+") + w.get<std::string>();
    os << fmt::format(
        "{:<28} {:<6} {:>7} {:>7} {:>10}  {:<40} {}\n", names, m.value("layout", "?"),
        m.value("m", int64_t(0)), m.value("k", int64_t(0)),
        fmt::format("{}x{}", m.value("tile_m", int64_t(0)), m.value("tile_k", int64_t(0))),
        m.value("callee", "?"), m["chosen_by"].get<std::string>());
    if (m.contains("decode") && m["decode"].is_object()) {
      const json &d = m["decode"];
      os << fmt::format(
          "{:<28} {:<6} {:>7} {:>7} {:>10}  {:<40} {}\n",
          fmt::format("  n < {}:", d.value("below", int64_t(0))), d.value("layout", "?"), "", "",
          fmt::format("{}x{}", d.value("tile_m", int64_t(0)), d.value("tile_k", int64_t(0))),
          d.value("callee", "?"), "--decode-layout");
    }
  }
}

// A .tern artifact (by its magic): what was compiled and which cost table
// chose each kernel.
int inspectArtifact(const std::string &path, bool asJson, std::ostream &out, std::ostream &err) {
  artifact::OpenOptions o;
  o.verifyWeightsHash = false;
  o.checkCpuFeatures = false;
  absl::StatusOr<std::unique_ptr<artifact::Artifact>> a = artifact::Artifact::open(path, o);
  for (uint16_t machine : {uint16_t(62) /* EM_X86_64 */, uint16_t(183) /* EM_AARCH64 */}) {
    if (a.ok())
      break;
    o.elfMachine = machine; // an artifact for another architecture
    if (auto b = artifact::Artifact::open(path, o); b.ok())
      a = std::move(b);
  }
  if (!a.ok()) {
    err << "ternc inspect: error: " << statusMessage(a.status()) << "\n";
    return 1;
  }
  const json r = artifactReport(**a);
  if (asJson)
    out << r.dump(1) << "\n";
  else
    printArtifactText(out, r);
  return 0;
}

bool isArtifact(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in && std::string_view(magic, 8) == std::string_view(TERN_ARTIFACT_MAGIC, 8);
}

int runInspectCommand(int argc, char **argv, std::ostream &out, std::ostream &err) {
  Options opts;
  std::string path;
  args::Parser p(
      "ternc inspect",
      R"(usage: ternc inspect MODEL.gguf|MODEL.tern [--json] [--i2s-layout L] [--no-value-check]

Prints the file's arch, hyperparameters, tokenizer summary, a tensor table (name,
shape, ggml type, resolved format, bytes, offset) and the quant-mapping verdict
with its reasons. Exits 1 (reasons on stderr) when ternc refuses the file.
For a compiled .tern artifact: its target, the kernel of every matrix and the
cost table that chose it (built-in, or the `ternc tune` file given to
--tuning).
)");
  p.positional("MODEL.gguf", "", [&](std::string_view, const std::string &v) -> absl::Status {
    if (!path.empty())
      return absl::InvalidArgumentError(
          fmt::format("more than one model given ('{}', '{}')", path, v));
    path = v;
    return absl::OkStatus();
  });
  p.flag("--json", &opts.json, "one JSON object on stdout instead of text");
  p.parsed("--i2s-layout", &opts.mapping.i2sLayout, formats::parseI2SLayout,
           formats::i2sLayoutChoices(), "L",
           "I2_S packing to assume: x86-qk128 (default, bitnet.cpp's x86;\n"
           "alias x86) | arm-qk64 (alias arm) | x86-1x4");
  p.flag(
      "--no-value-check", [&] { opts.mapping.checkFloatValues = false; },
      "do not scan float weights for ternary values");
  if (std::optional<int> rc =
          p.parseOrExit(std::vector<std::string>(argv + 1, argv + argc), out, err))
    return *rc;
  if (path.empty()) {
    err << "ternc inspect: error: no model given (see 'ternc inspect --help')\n";
    return 2;
  }
  if (isArtifact(path))
    return inspectArtifact(path, opts.json, out, err);
  auto file = gguf::File::open(path);
  if (!file.ok()) {
    err << "ternc inspect: error: " << statusMessage(file.status()) << "\n";
    return 1;
  }
  const formats::ModelMapping mm = formats::verifyMapping(**file, opts.mapping);
  const json r = report(**file, mm);
  if (opts.json)
    out << r.dump(1) << "\n";
  else
    printText(out, r);
  if (!mm.ok()) {
    err << "ternc inspect: " << path << ": " << statusMessage(mm.status()) << "\n";
    return 1;
  }
  if (!r["verdict"]["accepted"].get<bool>()) { // the model configuration's error
    err << "ternc inspect: " << path << ": " << r["verdict"]["errors"].back().get<std::string>()
        << "\n";
    return 1;
  }
  return 0;
}

} // namespace tern::inspect
