// tern-verify-quant-mapping: every weight's format agrees with its role and
// with what the foundation verifier (runtime/formats/mapping.h) resolves.
#include "passes/Passes.h"

#include "passes/Common.h"
#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"
#include "llvm/ADT/TypeSwitch.h"

namespace tern::passes {
#define GEN_PASS_DEF_VERIFYQUANTMAPPINGPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;
namespace fmts = tern::formats;

namespace {

enum class Want { Embedding, Norm, Ternary, Head };

const char *wantName(Want w) {
  switch (w) {
  case Want::Embedding:
    return "a token embedding";
  case Want::Norm:
    return "a norm weight";
  case Want::Ternary:
    return "a ternary projection (attn_q/k/v/output, ffn_gate/up/down)";
  case Want::Head:
    return "an output projection (output or token_embd)";
  }
  return "";
}

bool roleFits(fmts::TensorRole r, Want w) {
  switch (w) {
  case Want::Embedding:
    return r == fmts::TensorRole::TokenEmbd;
  case Want::Norm:
    return r == fmts::TensorRole::Norm;
  case Want::Ternary:
    return fmts::isTernaryRole(r);
  case Want::Head:
    return r == fmts::TensorRole::Output || r == fmts::TensorRole::TokenEmbd;
  }
  return false;
}

struct VerifyQuantMappingPass
    : tern::passes::impl::VerifyQuantMappingPassBase<VerifyQuantMappingPass> {
  using Base::Base;
  VerifyQuantMappingPass(const tern::passes::VerifyQuantMappingPassOptions &options,
                         tern::passes::WeightsIO io)
      : Base(options), io(std::move(io)) {}

  tern::passes::WeightsIO io;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::string path = tern::passes::sourcePath(module, source);
    std::unique_ptr<tern::gguf::File> opened;
    const tern::gguf::File *file = nullptr;
    fmts::ModelMapping ownMapping;
    const fmts::ModelMapping *mappingPtr = &ownMapping;
    if (io.source) { // ternc: the file it opened and the mapping it verified
      path = io.source->path;
      file = io.source->file.get();
      mappingPtr = &io.source->mapping;
    } else if (path.empty()) {
      if (requireSource) {
        module.emitError() << "no source GGUF: set the module's tern.source or source=";
        return signalPassFailure();
      }
    } else {
      auto f = tern::gguf::File::open(path);
      if (!f.ok()) {
        module.emitError() << "cannot read source GGUF '" << path
                           << "': " << std::string(f.status().message());
        return signalPassFailure();
      }
      opened = std::move(*f);
      file = opened.get();
      fmts::MappingOptions opts;
      FailureOr<fmts::I2SLayout> layout = tern::passes::i2sLayoutOf(module);
      if (failed(layout))
        return signalPassFailure();
      opts.i2sLayout = *layout;
      ownMapping = fmts::verifyMapping(*file, opts);
    }
    const fmts::ModelMapping &mapping = *mappingPtr;

    bool ok = true;
    auto check = [&](Operation *op, WeightAttr w, Want want) {
      fmts::TensorRole role = fmts::roleOf(w.getName().str());
      if (!roleFits(role, want)) {
        op->emitOpError() << "weight '" << w.getName() << "' has role " << fmts::roleName(role)
                          << ", but this op needs " << wantName(want);
        ok = false;
        return;
      }
      if (want == Want::Ternary && !isTernaryFormat(w.getFormat()) &&
          !isFloatFormat(w.getFormat())) {
        op->emitOpError() << "weight '" << w.getName() << "' in "
                          << stringifyWeightFormat(w.getFormat())
                          << " is not ternary; non-ternary quantizations are refused, never "
                             "reinterpreted";
        ok = false;
        return;
      }
      if (!file)
        return;
      const fmts::TensorMapping *t = mapping.find(w.getName().str());
      if (!t) {
        op->emitOpError() << "weight '" << w.getName() << "' is not a tensor of '" << path << "'";
        ok = false;
        return;
      }
      if (!t->resolved) {
        op->emitOpError() << "quant mapping cannot resolve '" << w.getName() << "' (type id "
                          << t->typeId << "): " << t->reason;
        ok = false;
        return;
      }
      llvm::SmallVector<int64_t> shape(t->dims.rbegin(), t->dims.rend());
      std::string fileFormat = t->resolved->name;
      std::string irFormat = llvm::StringRef(stringifyWeightFormat(w.getFormat())).upper();
      if (fileFormat != irFormat) {
        op->emitOpError() << "weight '" << w.getName() << "' is recorded as "
                          << stringifyWeightFormat(w.getFormat()) << " but the file holds "
                          << fileFormat;
        ok = false;
      } else if (llvm::ArrayRef<int64_t>(shape) != w.getShape()) {
        op->emitOpError() << "weight '" << w.getName() << "' shape differs from the file's "
                          << "(GGUF dims reversed: " << tern::passes::shapeString(shape) << ")";
        ok = false;
      } else if (t->offset != w.getOffset() || t->bytes != w.getBytes()) {
        op->emitOpError() << "weight '" << w.getName() << "' is at offset " << w.getOffset() << " ("
                          << w.getBytes() << " bytes) in the IR but at offset " << t->offset << " ("
                          << t->bytes << " bytes) in the file";
        ok = false;
      } else if (!t->ok) {
        op->emitOpError() << "quant mapping refuses '" << w.getName() << "': " << t->reason;
        ok = false;
      } else if (want == Want::Ternary && !t->ternary) {
        op->emitOpError() << "weight '" << w.getName() << "' (" << fileFormat
                          << ") does not hold ternary values: " << t->reason;
        ok = false;
      }
    };

    module.walk([&](Operation *op) {
      llvm::TypeSwitch<Operation *>(op)
          .Case([&](EmbedOp o) { check(op, o.getWeight(), Want::Embedding); })
          .Case([&](RmsNormOp o) { check(op, o.getWeight(), Want::Norm); })
          .Case([&](RmsNormQuantizeOp o) { check(op, o.getWeight(), Want::Norm); })
          .Case([&](BitLinearOp o) { check(op, o.getWeight(), Want::Ternary); })
          .Case([&](TernaryMatmulOp o) {
            for (Attribute a : o.getWeights())
              check(op, cast<WeightAttr>(a), Want::Ternary);
          })
          .Case([&](LmHeadOp o) { check(op, o.getWeight(), Want::Head); });
    });
    if (!ok)
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<mlir::Pass>
tern::passes::createVerifyQuantMappingPass(const VerifyQuantMappingPassOptions &options,
                                           WeightsIO io) {
  return std::make_unique<VerifyQuantMappingPass>(options, std::move(io));
}
