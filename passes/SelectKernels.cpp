// tern-select-kernels: a layout and tiles per matrix from the target's cost
// model, or the one forced by kernel=.
#include "passes/Passes.h"

#include "compiler/target/TargetInfo.h"
#include "mlir/IR/Builders.h"
#include "passes/Common.h"
#include "llvm/Support/FormatVariadic.h"

namespace tern::passes {
#define GEN_PASS_DEF_SELECTKERNELSPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;
using tern::compiler::KernelEstimate;
using tern::compiler::TargetInfo;

namespace {

struct Forced {
  std::optional<KernelLayout> layout;
  int64_t tileM = 0, tileK = 0;
};

// "auto" | "<layout>" | "<layout>:<tile_m>x<tile_k>".
std::optional<Forced> parseForced(llvm::StringRef s) {
  Forced f;
  if (s.empty() || s == "auto")
    return f;
  auto [name, tiles] = s.split(':');
  f.layout = symbolizeKernelLayout(name);
  if (!f.layout || !isTernaryLayout(*f.layout))
    return std::nullopt;
  if (!tiles.empty()) {
    auto [m, k] = tiles.split('x');
    if (m.getAsInteger(10, f.tileM) || k.getAsInteger(10, f.tileK) || f.tileM <= 0 || f.tileK <= 0)
      return std::nullopt;
  }
  return f;
}

struct SelectKernelsPass : tern::passes::impl::SelectKernelsPassBase<SelectKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::unique_ptr<TargetInfo> ti = tern::compiler::createTargetInfo(target);
    if (!ti) {
      module.emitError() << "unknown target '" << target
                         << "' (known: " << tern::compiler::targetNames() << ")";
      return signalPassFailure();
    }
    std::optional<Forced> forced = parseForced(kernel);
    if (!forced) {
      module.emitError() << "invalid kernel= '" << kernel
                         << "' (auto, i2s, tl1, tl2, tq2 or tq1, optionally with "
                            ":<tile_m>x<tile_k>)";
      return signalPassFailure();
    }
    module->setAttr("tern.target", StringAttr::get(&getContext(), ti->name()));
    bool ok = true;
    module.walk([&](Operation *op) {
      std::optional<tern::passes::MatrixInfo> info = tern::passes::matrixInfo(op);
      if (!info)
        return;
      WeightFormat format = info->weights.front().getFormat();
      if (info->ternaryRole && (format == WeightFormat::TL1 || format == WeightFormat::TL2)) {
        op->emitOpError() << "weight " << info->names() << " is stored as "
                          << stringifyWeightFormat(format)
                          << ", whose tiling comes from the producing build's kernel_config; "
                             "re-quantize it to I2_S or TQ2_0";
        ok = false;
        return;
      }
      std::vector<KernelEstimate> cands =
          ti->candidates(info->rows, info->cols, format, info->ternaryRole);
      std::optional<KernelEstimate> choice;
      if (info->ternaryRole && forced->layout) {
        if (!ti->supports(*forced->layout)) {
          std::string avail;
          for (KernelLayout l : ti->ternaryLayouts())
            avail += (avail.empty() ? "" : ", ") + stringifyKernelLayout(l).str();
          op->emitOpError() << "kernel " << stringifyKernelLayout(*forced->layout)
                            << " is not available on target " << ti->name()
                            << " (available: " << avail << ")";
          ok = false;
          return;
        }
        if (forced->tileM) {
          choice =
              ti->estimate(*forced->layout, info->rows, info->cols, forced->tileM, forced->tileK);
        } else {
          for (const KernelEstimate &e : cands)
            if (e.layout == *forced->layout) {
              choice = e;
              break;
            }
        }
      } else {
        // The cost model ranks layouts as if every one had a kernel for this
        // ISA; prefer the best one that really has a fast ukernel (a layout
        // with only its scalar `_ref` twin would be far slower than ranked).
        for (const KernelEstimate &e : cands)
          if (!info->ternaryRole ||
              tern::passes::hasUkernelVariant(stringifyKernelLayout(e.layout), "i8",
                                              stringifyIsa(ti->isa()))) {
            choice = e;
            break;
          }
        if (!choice)
          choice = cands.front();
      }
      auto attr = KernelAttr::getChecked([&] { return op->emitOpError(); }, &getContext(),
                                         choice->layout, ti->isa(), choice->tileM, choice->tileK);
      if (!attr) {
        ok = false;
        return;
      }
      op->setAttr("kernel", attr);
      if (explain) {
        InFlightDiagnostic d = op->emitRemark();
        d << "kernel for " << info->names() << " [" << info->rows << "x" << info->cols << "] on "
          << ti->name() << ": " << choice->describe();
        if (forced->layout && info->ternaryRole)
          d << " (forced)";
        else if (choice->layout != cands.front().layout)
          d << " (the cost model ranks " << stringifyKernelLayout(cands.front().layout)
            << " first, but it has only the scalar ukernel on " << ti->name() << ")";
        for (const KernelEstimate &e : cands)
          if (e.layout != choice->layout) {
            d << "; best other layout " << e.describe()
              << llvm::formatv(" (+{0:f0}%)", (e.score / choice->score - 1) * 100).str();
            break;
          }
      }
    });
    if (!ok)
      signalPassFailure();
  }
};

} // namespace
