// tern-pack-weights: decode every weight from the source GGUF, repack it
// into its kernel's layout, check the round trip, append it to the
// packed-weight blob and record where it went.
#include "passes/Passes.h"

#include <cstring>
#include <fstream>

#include "compiler/pack/Pack.h"
#include "compiler/target/TargetInfo.h"
#include "mlir/IR/Builders.h"
#include "passes/Common.h"
#include "runtime/gguf/gguf.h"

namespace tern::passes {
#define GEN_PASS_DEF_PACKWEIGHTSPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;
namespace fmts = tern::formats;
namespace pk = tern::compiler::pack;

namespace {

struct PackWeightsPass : tern::passes::impl::PackWeightsPassBase<PackWeightsPass> {
  using Base::Base;

  const tern::gguf::File *file = nullptr;
  fmts::I2SLayout i2s = fmts::I2SLayout::X86_QK128;

  absl::StatusOr<std::span<const uint8_t>> bytesOf(WeightAttr w) {
    uint64_t begin = file->dataOffset() + w.getOffset();
    if (begin + w.getBytes() > file->fileSize())
      return absl::OutOfRangeError("weight '" + w.getName().str() +
                                   "' runs past the end of the file");
    return file->bytes().subspan(begin, w.getBytes());
  }

  absl::StatusOr<fmts::TernaryMatrix> decode(WeightAttr w) {
    auto bytes = bytesOf(w);
    if (!bytes.ok())
      return bytes.status();
    uint64_t rows = w.getRows(), cols = w.getCols();
    switch (w.getFormat()) {
    case WeightFormat::TQ2_0:
      return fmts::unpackTQ2_0(*bytes, rows, cols);
    case WeightFormat::TQ1_0:
      return fmts::unpackTQ1_0(*bytes, rows, cols);
    case WeightFormat::I2_S:
      return fmts::unpackI2S(*bytes, rows, cols, i2s);
    case WeightFormat::F32: {
      std::vector<float> v(rows * cols);
      std::memcpy(v.data(), bytes->data(), v.size() * 4);
      return fmts::ternaryFromF32(v, rows, cols);
    }
    case WeightFormat::F16:
    case WeightFormat::BF16: {
      std::vector<uint16_t> v(rows * cols);
      std::memcpy(v.data(), bytes->data(), v.size() * 2);
      return w.getFormat() == WeightFormat::F16 ? fmts::ternaryFromF16(v, rows, cols)
                                                : fmts::ternaryFromBF16(v, rows, cols);
    }
    default:
      return absl::UnimplementedError(std::string("cannot repack from ") +
                                      stringifyWeightFormat(w.getFormat()).str());
    }
  }

  // Dense matrices (the LM head) are stored as their layout reads them.
  absl::StatusOr<std::vector<uint8_t>> packDense(WeightAttr w, KernelLayout layout) {
    auto bytes = bytesOf(w);
    if (!bytes.ok())
      return bytes.status();
    if (w.getFormat() == WeightFormat::BF16 && layout == KernelLayout::F32) {
      std::vector<uint8_t> out(bytes->size() * 2);
      for (size_t i = 0; i < bytes->size() / 2; ++i) {
        float f = fmts::bf16ToF32(uint16_t((*bytes)[2 * i] | ((*bytes)[2 * i + 1] << 8)));
        std::memcpy(out.data() + 4 * i, &f, 4);
      }
      return out;
    }
    return std::vector<uint8_t>(bytes->begin(), bytes->end());
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::string path = tern::passes::sourcePath(module, source);
    if (path.empty()) {
      module.emitError() << "tern-pack-weights needs the source GGUF (tern.source or source=)";
      return signalPassFailure();
    }
    auto opened = tern::gguf::File::open(path);
    if (!opened.ok()) {
      module.emitError() << "cannot read source GGUF '" << path
                         << "': " << std::string(opened.status().message());
      return signalPassFailure();
    }
    std::unique_ptr<tern::gguf::File> owned = std::move(*opened);
    file = owned.get();
    FailureOr<tern::formats::I2SLayout> layout = tern::passes::i2sLayoutOf(module);
    if (failed(layout))
      return signalPassFailure();
    i2s = *layout;

    std::vector<uint8_t> blob;
    bool ok = true;
    module.walk([&](Operation *op) {
      std::optional<tern::passes::MatrixInfo> info = tern::passes::matrixInfo(op);
      if (!info)
        return;
      KernelAttr kernel = tern::passes::kernelOf(op);
      if (!kernel) {
        op->emitOpError() << "has no kernel; run tern-select-kernels first";
        ok = false;
        return;
      }
      absl::StatusOr<std::vector<uint8_t>> packed;
      if (info->ternaryRole) {
        std::vector<fmts::TernaryMatrix> parts;
        llvm::SmallVector<int64_t> segs;
        for (WeightAttr w : info->weights) {
          auto m = decode(w);
          if (!m.ok()) {
            op->emitOpError() << "cannot decode weight '" << w.getName()
                              << "': " << std::string(m.status().message());
            ok = false;
            return;
          }
          parts.push_back(std::move(*m));
          segs.push_back(w.getRows());
        }
        auto stacked = pk::stackRows(parts);
        pk::PackParams params{kernel.getLayout(), kernel.getTileM(), kernel.getTileK()};
        if (stacked.ok())
          packed = pk::packTernary(*stacked, segs, params);
        else
          packed = stacked.status();
        if (packed.ok() && verifyRoundTrip) {
          auto back = pk::unpackTernary(*packed, stacked->rows, stacked->cols, segs, params);
          if (!back.ok() || !pk::sameMatrix(*back, *stacked)) {
            op->emitOpError() << "packing " << info->names() << " into "
                              << stringifyKernelLayout(kernel.getLayout()) << " does not round-trip"
                              << (back.ok() ? "" : ": " + std::string(back.status().message()));
            ok = false;
            return;
          }
        }
      } else {
        packed = packDense(info->weights.front(), kernel.getLayout());
      }
      if (!packed.ok()) {
        op->emitOpError() << "cannot pack " << info->names() << " into "
                          << stringifyKernelLayout(kernel.getLayout()) << ": "
                          << std::string(packed.status().message());
        ok = false;
        return;
      }
      uint64_t offset = (blob.size() + 63) / 64 * 64;
      blob.resize(offset);
      blob.insert(blob.end(), packed->begin(), packed->end());
      op->setAttr("packed", PackedAttr::get(&getContext(), kernel.getLayout(), offset,
                                            packed->size(), pk::fnv1a(*packed)));
    });
    if (!ok)
      return signalPassFailure();
    module->setAttr("tern.packed_bytes",
                    IntegerAttr::get(IntegerType::get(&getContext(), 64), blob.size()));
    if (!out.empty()) {
      std::ofstream f(out, std::ios::binary);
      f.write(reinterpret_cast<const char *>(blob.data()), std::streamsize(blob.size()));
      if (!f) {
        module.emitError() << "cannot write packed weights to '" << out << "'";
        return signalPassFailure();
      }
    }
  }
};

} // namespace
