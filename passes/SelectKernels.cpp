// tern-select-kernels: a layout and tiles per matrix from the target's cost
// model, or the one forced by kernel=.
#include "passes/Passes.h"

#include "compiler/target/TargetInfo.h"
#include "compiler/target/Tuning.h"
#include "mlir/IR/Builders.h"
#include "passes/Common.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/TargetParser/Host.h"

namespace tern::passes {
#define GEN_PASS_DEF_SELECTKERNELSPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;
using tern::compiler::ActQuant;
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
    std::optional<ActQuant> act = tern::compiler::parseActQuant(actQuant);
    if (!act) {
      module.emitError() << "invalid act-quant= '" << actQuant << "' (token or none)";
      return signalPassFailure();
    }
    if (maxBatch < 1) {
      module.emitError() << "invalid max-batch= " << int64_t(maxBatch) << " (at least 1)";
      return signalPassFailure();
    }
    std::optional<tern::compiler::HeadType> headType = tern::compiler::parseHeadType(head);
    if (!headType) {
      module.emitError() << "invalid head= '" << head << "' (f16 or q8)";
      return signalPassFailure();
    }
    std::optional<Forced> forced = parseForced(kernel);
    if (!forced) {
      module.emitError() << "invalid kernel= '" << kernel
                         << "' (auto, i2s, tl1, tl2, tl2v, tq2 or tq1, optionally with "
                            ":<tile_m>x<tile_k>)";
      return signalPassFailure();
    }
    if (forced->layout && forced->tileM) {
      std::string why = kernelTileError(*forced->layout, ti->isa(), forced->tileM, forced->tileK);
      if (!why.empty()) {
        module.emitError() << "kernel= '" << kernel << "': " << why;
        return signalPassFailure();
      }
    }
    if (!tuning.empty()) {
      absl::StatusOr<tern::compiler::Tuning> t = tern::compiler::loadTuning(tuning);
      if (!t.ok()) {
        module.emitError() << std::string(t.status().message());
        return signalPassFailure();
      }
      const std::string hostCpu =
          llvm::StringRef(target) == "native" ? llvm::sys::getHostCPUName().str() : "";
      if (std::string why = tern::compiler::tuningMismatch(*t, *ti, hostCpu); !why.empty()) {
        module.emitError() << why;
        return signalPassFailure();
      }
      ti->setTuning(std::make_shared<const tern::compiler::Tuning>(std::move(*t)));
    }
    // --decode-layout: a second, decode-only copy of every ternary matrix.
    std::optional<KernelLayout> decode;
    if (decodeLayout != "none" && !decodeLayout.empty()) {
      decode = symbolizeKernelLayout(decodeLayout);
      if (!decode || *decode != KernelLayout::TL2V) {
        module.emitError() << "invalid decode-layout= '" << decodeLayout << "' (none or tl2v)";
        return signalPassFailure();
      }
      const llvm::StringRef layoutName = stringifyKernelLayout(*decode);
      if (*act != ActQuant::Token ||
          !tern::passes::hasUkernelVariant(layoutName, "i8", ti->name())) {
        std::string with = tern::passes::ukernelIsas(layoutName, "i8");
        module.emitError() << "decode-layout=" << layoutName << " needs a " << layoutName
                           << " int8 kernel, which target " << ti->name()
                           << (*act != ActQuant::Token ? " with act-quant none" : "")
                           << " does not have (targets with one: "
                           << (with.empty() ? std::string("none") : with) << ", act-quant token)";
        return signalPassFailure();
      }
      if (decodeBelow < 0 || decodeBelow == 1) {
        module.emitError() << "invalid decode-below= " << int64_t(decodeBelow)
                           << " (0 for the default, or at least 2)";
        return signalPassFailure();
      }
      const int64_t below =
          decodeBelow > 0 ? int64_t(decodeBelow) : tern::passes::kDefaultDecodeBelow;
      module->setAttr("tern.decode_below",
                      IntegerAttr::get(IntegerType::get(&getContext(), 64), below));
      module->setAttr("tern.decode_layout", StringAttr::get(&getContext(), layoutName));
    }
    module->setAttr("tern.target", StringAttr::get(&getContext(), ti->name()));
    // Which table chose each matrix: the receipt the artifact's metadata
    // and `ternc inspect` show.
    module->setAttr("tern.cost_table",
                    StringAttr::get(&getContext(),
                                    tuning.empty() ? std::string("built-in") : "tuning " + tuning));
    NamedAttrList sources;
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
      std::vector<KernelEstimate> cands = ti->candidates(
          info->rows, info->cols, format, info->ternaryRole, *act, maxBatch, *headType);
      std::optional<KernelEstimate> choice;
      if (info->ternaryRole && forced->layout) {
        if (!ti->supports(*forced->layout, *act)) {
          std::string avail;
          for (KernelLayout l : ti->ternaryLayouts(*act))
            avail += (avail.empty() ? "" : ", ") + stringifyKernelLayout(l).str();
          op->emitOpError() << "kernel " << stringifyKernelLayout(*forced->layout)
                            << " is not available on target " << ti->name() << " with act-quant "
                            << tern::compiler::actQuantName(*act) << " (available: " << avail
                            << ")";
          ok = false;
          return;
        }
        if (forced->tileM) {
          choice = ti->estimate(*forced->layout, info->rows, info->cols, forced->tileM,
                                forced->tileK, *act, maxBatch);
        } else {
          for (const KernelEstimate &e : cands)
            if (e.layout == *forced->layout) {
              choice = e;
              break;
            }
        }
      } else if (!cands.empty()) {
        choice = cands.front();
      }
      if (!choice) {
        op->emitOpError() << "no kernel candidate for " << info->names() << " on target "
                          << ti->name();
        ok = false;
        return;
      }
      auto attr = KernelAttr::getChecked([&] { return op->emitOpError(); }, &getContext(),
                                         choice->layout, ti->isa(), choice->tileM, choice->tileK);
      if (!attr) {
        ok = false;
        return;
      }
      op->setAttr("kernel", attr);
      std::optional<KernelEstimate> decodeChoice;
      if (decode && info->ternaryRole && choice->layout != *decode) {
        // The decode copy's tiles: the best candidate of that layout when
        // decode alone decides (max-batch 1).
        for (const KernelEstimate &e : ti->candidates(info->rows, info->cols, format, true, *act,
                                                      /*maxBatch=*/1, *headType))
          if (e.layout == *decode) {
            decodeChoice = e;
            break;
          }
        if (!decodeChoice) {
          op->emitOpError() << "no " << stringifyKernelLayout(*decode) << " candidate for "
                            << info->names() << " on target " << ti->name();
          ok = false;
          return;
        }
        auto dattr = KernelAttr::getChecked([&] { return op->emitOpError(); }, &getContext(),
                                            decodeChoice->layout, ti->isa(), decodeChoice->tileM,
                                            decodeChoice->tileK);
        if (!dattr) {
          ok = false;
          return;
        }
        op->setAttr("decode_kernel", dattr);
      }
      if (isa<LmHeadOp>(op)) // what the head reads: f16, f32, q8_0, q8, or a ternary layout
        module->setAttr("tern.head",
                        StringAttr::get(&getContext(), stringifyKernelLayout(choice->layout)));
      const bool forcedHere = info->ternaryRole && forced->layout.has_value();
      sources.set(info->weights.front().getName(),
                  StringAttr::get(&getContext(), choiceSource(*choice, forcedHere)));
      if (explain)
        explainChoice(op, *info, *ti, *act, *choice, cands, forced->layout.has_value(),
                      decodeChoice);
    });
    module->setAttr("tern.kernel_sources", sources.getDictionary(&getContext()));
    if (!ok)
      signalPassFailure();
  }

  // "built-in" | "tuning FILE" (the rates that priced the choice), with
  // " (forced)" when kernel= chose the layout.
  static std::string choiceSource(const KernelEstimate &e, bool forcedLayout) {
    std::string s = e.tunedBy.empty() ? std::string("built-in") : "tuning " + e.tunedBy;
    return forcedLayout ? s + " (forced)" : s;
  }

  // One remark per matrix: what runs (the ukernel variant, "table" rates
  // measured or estimated), why (its estimate, the score rule), and the
  // best other layout with how much worse it scores.
  void explainChoice(Operation *op, const tern::passes::MatrixInfo &info, const TargetInfo &ti,
                     ActQuant act, const KernelEstimate &choice,
                     const std::vector<KernelEstimate> &cands, bool forcedLayout,
                     const std::optional<KernelEstimate> &decodeChoice) {
    InFlightDiagnostic d = op->emitRemark();
    d << "kernel for " << info.names() << " [" << info.rows << "x" << info.cols << "] on "
      << ti.name();
    if (!info.ternaryRole) {
      d << ": " << stringifyKernelLayout(choice.layout)
        << (choice.layout == KernelLayout::Q8 ? " (head=q8: int8 rows, f32 scale per row, from "
                                              : " (the only kernel for ")
        << stringifyWeightFormat(info.weights.front().getFormat()) << " weights), memory "
        << llvm::formatv("{0:f2}", choice.memoryUs).str() << " us/token";
      if (!choice.tunedBy.empty())
        d << llvm::formatv(", compute {0:f2} us/token ({1} kernel, tuned {2:f1} G/s per core; "
                           "tuning {3})",
                           choice.computeUs, choice.variant, choice.decodeGs, choice.tunedBy)
                 .str();
      return;
    }
    d << ", act-quant " << tern::compiler::actQuantName(act) << ", max-batch " << int64_t(maxBatch)
      << ": " << choice.describe();
    const std::string table =
        choice.tunedBy.empty() ? std::string("built-in table") : "tuning " + choice.tunedBy;
    if (forcedLayout)
      d << " (forced; rates from " << table << ")";
    else
      d << " (" << table
        << ": lowest score = " << (maxBatch <= 1 ? "decode" : "decode + 4 x prefill per token")
        << ")";
    for (const KernelEstimate &e : cands)
      if (e.layout != choice.layout) {
        const double pct = (e.score / choice.score - 1) * 100;
        d << "; best other layout " << e.describe()
          << (pct >= 0 ? llvm::formatv(" (+{0:f0}%)", pct).str()
                       : llvm::formatv(" ({0:f0}% lower score)", -pct).str());
        break;
      }
    if (decodeChoice) {
      int64_t below = tern::passes::kDefaultDecodeBelow;
      if (auto a = op->getParentOfType<ModuleOp>()->getAttrOfType<IntegerAttr>("tern.decode_below"))
        below = a.getInt();
      d << "; decode copy (calls of fewer than " << below
        << " tokens, --decode-layout): " << decodeChoice->describe()
        << llvm::formatv(", decode {0:f0}% of the main layout's",
                         decodeChoice->decodeUs / choice.decodeUs * 100)
               .str();
    }
  }
};

} // namespace
