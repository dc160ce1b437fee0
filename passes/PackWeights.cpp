// tern-pack-weights: repack every matrix into its kernel's layout, in
// parallel, straight to where the bytes go (ternc: the artifact's weights
// section; tern-opt: out=), and record where each went with its checksum.
//
// Offsets are assigned first, in program order: every layout's packed size
// follows from the shape (pack::packedBytes). The matrices are then packed in
// any order on the context's thread pool (ternc -j N), biggest first, and
// written at their final offsets. A worker holds one matrix at a time (its
// codes, one byte per weight, and its packed bytes); dense matrices (an f16
// or f32 LM head) are copied in 4 MiB chunks. Once read, a matrix's source
// pages are released (SourceModel::release), so the mapped GGUF does not
// stay resident as a whole.
#include "passes/Passes.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "compiler/pack/Pack.h"
#include "compiler/target/TargetInfo.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Threading.h"
#include "passes/Common.h"
#include "runtime/formats/q8_rows.h"
#include "runtime/gguf/gguf.h"
#include "runtime/support/hash.h"

namespace tern::passes {
#define GEN_PASS_DEF_PACKWEIGHTSPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;
namespace fmts = tern::formats;
namespace pk = tern::compiler::pack;

namespace {

using Write = std::function<absl::Status(uint64_t, std::span<const uint8_t>)>;

// One matrix op and where its packed bytes go.
struct Job {
  Operation *op;
  tern::passes::MatrixInfo info;
  KernelAttr kernel;
  uint64_t offset = 0, bytes = 0;
  uint64_t checksum = 0; // results
  std::string error;     // the op's error message, if packing failed
  // The decode copy (decode_kernel, ternc --decode-layout): packed from the
  // same decoded codes right after the main one.
  KernelAttr decodeKernel;
  uint64_t decodeOffset = 0, decodeBytes = 0, decodeChecksum = 0;
};

struct PackWeightsPass : tern::passes::impl::PackWeightsPassBase<PackWeightsPass> {
  using Base::Base;
  PackWeightsPass(const tern::passes::PackWeightsPassOptions &options, tern::passes::WeightsIO io)
      : Base(options), io(std::move(io)) {}

  tern::passes::WeightsIO io;
  const tern::compiler::SourceModel *src = nullptr;
  fmts::I2SLayout i2s = fmts::I2SLayout::X86_QK128;

  absl::StatusOr<std::span<const uint8_t>> bytesOf(WeightAttr w) const {
    const tern::gguf::File &file = *src->file;
    uint64_t begin = file.dataOffset() + w.getOffset();
    if (begin + w.getBytes() > file.fileSize())
      return absl::OutOfRangeError("weight '" + w.getName().str() +
                                   "' runs past the end of the file");
    return file.bytes().subspan(begin, w.getBytes());
  }

  absl::StatusOr<fmts::TernaryMatrix> decode(WeightAttr w) const {
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

  static bool widensBf16(WeightAttr w, KernelLayout layout) {
    return w.getFormat() == WeightFormat::BF16 && layout == KernelLayout::F32;
  }

  // Packed size, known before packing.
  static uint64_t packedSize(const Job &j) {
    if (j.info.ternaryRole)
      return pk::packedBytes({j.kernel.getLayout(), j.kernel.getTileM(), j.kernel.getTileK()},
                             j.info.rows, j.info.cols, j.info.weights.size());
    WeightAttr w = j.info.weights.front();
    if (j.kernel.getLayout() == KernelLayout::Q8)
      return fmts::q8HeadBytes(w.getRows(), w.getCols());
    return widensBf16(w, j.kernel.getLayout()) ? w.getBytes() * 2 : w.getBytes();
  }

  // A float head requantized to q8 (--head q8): int8 rows, then one f32
  // scale per row at the next multiple of 64 bytes (formats/q8_rows.h),
  // rows streamed in chunks of about 4 MiB of source.
  void packQ8(Job &j, const Write &write) const {
    WeightAttr w = j.info.weights.front();
    auto fail = [&](const std::string &why) {
      j.error = "cannot pack " + j.info.names() + " into q8: " + why;
    };
    auto bytes = bytesOf(w);
    if (!bytes.ok())
      return fail(std::string(bytes.status().message()));
    const uint64_t rows = w.getRows(), cols = w.getCols();
    const WeightFormat f = w.getFormat();
    const uint64_t elemBytes = f == WeightFormat::F32 ? 4 : 2;
    if (f != WeightFormat::F32 && f != WeightFormat::F16 && f != WeightFormat::BF16)
      return fail(std::string("a ") + stringifyWeightFormat(f).str() + " weight is not float");
    if (bytes->size() != rows * cols * elemBytes)
      return fail("the weight holds " + std::to_string(bytes->size()) + " bytes, not " +
                  std::to_string(rows * cols * elemBytes));
    tern::ContentHasher codesHash;
    std::vector<float> scales(rows), row(cols);
    const uint64_t rowsPerChunk = std::max<uint64_t>(1, (4u << 20) / (cols * elemBytes));
    std::vector<uint8_t> q;
    for (uint64_t r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const uint64_t nr = std::min(rowsPerChunk, rows - r0);
      std::span<const uint8_t> in = bytes->subspan(r0 * cols * elemBytes, nr * cols * elemBytes);
      q.resize(nr * cols);
      for (uint64_t r = 0; r < nr; ++r) {
        const uint8_t *src = in.data() + r * cols * elemBytes;
        for (uint64_t c = 0; c < cols; ++c) {
          if (f == WeightFormat::F32) {
            std::memcpy(&row[c], src + 4 * c, 4);
          } else {
            const uint16_t h = uint16_t(src[2 * c] | (src[2 * c + 1] << 8));
            row[c] = f == WeightFormat::F16 ? fmts::f16ToF32(h) : fmts::bf16ToF32(h);
          }
        }
        fmts::quantizeRowQ8(row.data(), int64_t(cols), reinterpret_cast<int8_t *>(&q[r * cols]),
                            &scales[r0 + r]);
      }
      codesHash.update(q);
      if (absl::Status s = write(j.offset + r0 * cols, q); !s.ok())
        return fail(std::string(s.message()));
      src->release(in);
    }
    // The padding between the codes and the scales, then the scales.
    const uint64_t at = fmts::q8HeadScalesAt(rows, cols);
    std::vector<uint8_t> tail(at - rows * cols + 4 * rows, 0);
    std::memcpy(tail.data() + (at - rows * cols), scales.data(), 4 * rows);
    codesHash.update(tail);
    if (absl::Status s = write(j.offset + rows * cols, tail); !s.ok())
      return fail(std::string(s.message()));
    j.checksum = codesHash.digest();
  }

  // Dense matrices (the LM head) are stored as their layout reads them,
  // streamed chunk by chunk.
  void packDense(Job &j, const Write &write) const {
    WeightAttr w = j.info.weights.front();
    auto bytes = bytesOf(w);
    if (!bytes.ok()) {
      j.error = "cannot pack " + j.info.names() + " into " +
                stringifyKernelLayout(j.kernel.getLayout()).str() + ": " +
                std::string(bytes.status().message());
      return;
    }
    tern::ContentHasher hasher;
    constexpr size_t kChunk = 4u << 20;
    const bool widen = widensBf16(w, j.kernel.getLayout());
    std::vector<uint8_t> wide;
    for (size_t at = 0; at < bytes->size(); at += kChunk) {
      std::span<const uint8_t> in = bytes->subspan(at, std::min(kChunk, bytes->size() - at));
      std::span<const uint8_t> out = in;
      uint64_t outAt = at;
      if (widen) {
        wide.resize(in.size() * 2);
        for (size_t i = 0; i < in.size() / 2; ++i) {
          float f = fmts::bf16ToF32(uint16_t(in[2 * i] | (in[2 * i + 1] << 8)));
          std::memcpy(wide.data() + 4 * i, &f, 4);
        }
        out = wide;
        outAt = at * 2;
      }
      hasher.update(out);
      if (absl::Status s = write(j.offset + outAt, out); !s.ok()) {
        j.error = "cannot write " + j.info.names() + ": " + std::string(s.message());
        return;
      }
      src->release(in);
    }
    j.checksum = hasher.digest();
  }

  void packMatrix(Job &j, const Write &write) const {
    std::vector<fmts::TernaryMatrix> parts;
    std::vector<int64_t> segs;
    for (WeightAttr w : j.info.weights) {
      auto m = decode(w);
      if (!m.ok()) {
        j.error = "cannot decode weight '" + w.getName().str() +
                  "': " + std::string(m.status().message());
        return;
      }
      if (auto b = bytesOf(w); b.ok())
        src->release(*b);
      parts.push_back(std::move(*m));
      segs.push_back(w.getRows());
    }
    absl::StatusOr<fmts::TernaryMatrix> stacked =
        parts.size() == 1 ? absl::StatusOr<fmts::TernaryMatrix>(std::move(parts.front()))
                          : pk::stackRows(parts);
    parts.clear();
    if (!stacked.ok()) {
      j.error = "cannot pack " + j.info.names() + " into " +
                stringifyKernelLayout(j.kernel.getLayout()).str() + ": " +
                std::string(stacked.status().message());
      return;
    }
    if (!packTernaryInto(j, *stacked, segs, j.kernel, j.offset, j.bytes, j.checksum, write))
      return;
    if (j.decodeKernel)
      packTernaryInto(j, *stacked, segs, j.decodeKernel, j.decodeOffset, j.decodeBytes,
                      j.decodeChecksum, write);
  }

  // Packs the codes into `kernel`'s layout and writes them at `offset`;
  // false with j.error set on failure.
  bool packTernaryInto(Job &j, const fmts::TernaryMatrix &stacked, std::span<const int64_t> segs,
                       KernelAttr kernel, uint64_t offset, uint64_t bytes, uint64_t &checksum,
                       const Write &write) const {
    const std::string layoutName = stringifyKernelLayout(kernel.getLayout()).str();
    pk::PackParams params{kernel.getLayout(), kernel.getTileM(), kernel.getTileK()};
    absl::StatusOr<std::vector<uint8_t>> packed = pk::packTernary(stacked, segs, params);
    if (!packed.ok()) {
      j.error = "cannot pack " + j.info.names() + " into " + layoutName + ": " +
                std::string(packed.status().message());
      return false;
    }
    if (verifyRoundTrip) {
      auto back = pk::unpackTernary(*packed, stacked.rows, stacked.cols, segs, params);
      if (!back.ok() || !pk::sameMatrix(*back, stacked)) {
        j.error = "packing " + j.info.names() + " into " + layoutName + " does not round-trip" +
                  (back.ok() ? "" : ": " + std::string(back.status().message()));
        return false;
      }
    }
    if (packed->size() != bytes) {
      j.error = "packing " + j.info.names() + " into " + layoutName + " gave " +
                std::to_string(packed->size()) + " bytes, " + std::to_string(bytes) + " expected";
      return false;
    }
    checksum = tern::contentHash(*packed);
    if (absl::Status s = write(offset, *packed); !s.ok()) {
      j.error = "cannot write " + j.info.names() + ": " + std::string(s.message());
      return false;
    }
    return true;
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::shared_ptr<const tern::compiler::SourceModel> owned = io.source;
    if (!owned) {
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
      auto s = std::make_shared<tern::compiler::SourceModel>();
      s->path = path;
      s->file = std::move(*opened);
      owned = std::move(s);
    }
    src = owned.get();
    FailureOr<tern::formats::I2SLayout> layout = tern::passes::i2sLayoutOf(module);
    if (failed(layout))
      return signalPassFailure();
    i2s = *layout;

    // Plan: every matrix's offset, in program order.
    std::vector<Job> jobs;
    uint64_t total = 0;
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
      Job j{op, std::move(*info), kernel};
      j.offset = (total + 63) / 64 * 64;
      j.bytes = packedSize(j);
      total = j.offset + j.bytes;
      if (KernelAttr dk = tern::passes::decodeKernelOf(op)) {
        if (!j.info.ternaryRole) {
          op->emitOpError() << "has a decode_kernel but is not a ternary matrix";
          ok = false;
          return;
        }
        j.decodeKernel = dk;
        j.decodeOffset = (total + 63) / 64 * 64;
        j.decodeBytes = pk::packedBytes({dk.getLayout(), dk.getTileM(), dk.getTileK()}, j.info.rows,
                                        j.info.cols, j.info.weights.size());
        total = j.decodeOffset + j.decodeBytes;
      }
      jobs.push_back(std::move(j));
    });
    if (!ok)
      return signalPassFailure();

    // Where the bytes go: ternc's sink and/or out=.
    int outFd = -1;
    Write toFile;
    if (!out.empty()) {
      outFd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (outFd < 0) {
        module.emitError() << "cannot write packed weights to '" << out
                           << "': " << std::strerror(errno);
        return signalPassFailure();
      }
      toFile = [&](uint64_t off, std::span<const uint8_t> b) -> absl::Status {
        for (size_t done = 0; done < b.size();) {
          ssize_t n = ::pwrite(outFd, b.data() + done, b.size() - done, off_t(off + done));
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            return absl::InternalError(std::string("pwrite failed: ") + std::strerror(errno));
          done += size_t(n);
        }
        return absl::OkStatus();
      };
    }
    const Write write = [&](uint64_t off, std::span<const uint8_t> b) -> absl::Status {
      if (io.writePacked)
        if (absl::Status s = io.writePacked(off, b); !s.ok())
          return s;
      return toFile ? toFile(off, b) : absl::OkStatus();
    };

    // Pack, biggest first (the pool then ends with the small ones).
    std::vector<size_t> order(jobs.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return jobs[a].bytes + jobs[a].decodeBytes > jobs[b].bytes + jobs[b].decodeBytes;
    });
    std::atomic<size_t> done{0};
    mlir::parallelFor(&getContext(), 0, order.size(), [&](size_t k) {
      Job &j = jobs[order[k]];
      if (j.info.ternaryRole)
        packMatrix(j, write);
      else if (j.kernel.getLayout() == KernelLayout::Q8)
        packQ8(j, write);
      else
        packDense(j, write);
      size_t n = ++done;
      if (io.progress)
        io.progress(n, jobs.size());
    });

    for (Job &j : jobs) {
      if (!j.error.empty()) {
        j.op->emitOpError() << j.error;
        ok = false;
        continue;
      }
      j.op->setAttr("packed", PackedAttr::get(&getContext(), j.kernel.getLayout(), j.offset,
                                              j.bytes, j.checksum));
      if (j.decodeKernel)
        j.op->setAttr("decode_packed",
                      PackedAttr::get(&getContext(), j.decodeKernel.getLayout(), j.decodeOffset,
                                      j.decodeBytes, j.decodeChecksum));
    }
    if (outFd >= 0) {
      if (ok && ::ftruncate(outFd, off_t(total)) != 0) {
        module.emitError() << "cannot write packed weights to '" << out
                           << "': " << std::strerror(errno);
        ok = false;
      }
      ::close(outFd);
    }
    if (!ok)
      return signalPassFailure();
    module->setAttr("tern.packed_bytes",
                    IntegerAttr::get(IntegerType::get(&getContext(), 64), total));
  }
};

} // namespace

std::unique_ptr<mlir::Pass>
tern::passes::createPackWeightsPass(const PackWeightsPassOptions &options, WeightsIO io) {
  return std::make_unique<PackWeightsPass>(options, std::move(io));
}
