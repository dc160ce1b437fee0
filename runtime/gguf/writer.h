// GGUF writer: versions 3 (default) and 2 (identical byte layout; v3 only
// adds the version number), to a file or a byte vector.
//
// Two levels:
//
//  * `Writer` — builds well-formed files. Metadata of every value type
//    (arrays of any element type, nested arrays), tensors of any type id,
//    aligned to `general.alignment` when that key is set (else 32), padded
//    after every tensor the way ggml does. Tensor data can be given up front
//    or produced lazily at write time (for models too big to hold twice).
//    `Writer::Tamper` lets tests break exactly one thing on the way out
//    (magic, version, counts, a tensor's n_dims / dims / type id / offset, a
//    truncated file) while everything else stays consistent.
//
//  * `ByteWriter` — raw little-endian emitters of GGUF's primitives (header,
//    strings with a lying length, key/value pairs with an arbitrary type id,
//    tensor infos with arbitrary n_dims, padding, patching bytes afterwards):
//    for files no well-behaved writer would produce.
//
// Example (a reader test for a tensor whose offset is out of range):
//
//   tern::gguf::Writer w;
//   w.setString("general.architecture", "bitnet");
//   ASSERT_TRUE(w.addTensor("t", {256, 2}, 35, std::vector<uint8_t>(132)).ok());
//   w.tamper.tensors[0].offset = 1u << 30;
//   auto bytes = w.toBytes();  // then File::fromBuffer(*bytes) must fail
//
//   tern::gguf::ByteWriter b;               // fully manual
//   b.header(3, /*nTensors=*/0, /*nKv=*/1);
//   b.str("k").u32(uint32_t(ValueType::STRING)).strWithLength(1000, "short");
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/gguf/gguf.h"

namespace tern::gguf {

// ---------------------------------------------------------------------------
// Value construction (Value is the reader's struct; these fill it correctly).
namespace val {
Value u8(uint8_t v);
Value i8(int8_t v);
Value u16(uint16_t v);
Value i16(int16_t v);
Value u32(uint32_t v);
Value i32(int32_t v);
Value u64(uint64_t v);
Value i64(int64_t v);
Value f32(float v);
Value f64(double v);
Value boolean(bool v);
Value str(std::string v);
// An array of `elemType`; every element must have that type (for nested
// arrays elemType is ARRAY and each element is itself an array Value).
Value array(ValueType elemType, std::vector<Value> elems);
Value strings(const std::vector<std::string> &v);
Value i32s(const std::vector<int32_t> &v);
Value u32s(const std::vector<uint32_t> &v);
Value f32s(const std::vector<float> &v);
} // namespace val

// ---------------------------------------------------------------------------
// Raw emitters. Every method appends little-endian bytes and returns *this.
class ByteWriter {
public:
  std::vector<uint8_t> &bytes() { return b_; }
  const std::vector<uint8_t> &bytes() const { return b_; }
  size_t size() const { return b_.size(); }

  ByteWriter &u8(uint8_t v);
  ByteWriter &i8(int8_t v) { return u8(uint8_t(v)); }
  ByteWriter &u16(uint16_t v);
  ByteWriter &i16(int16_t v) { return u16(uint16_t(v)); }
  ByteWriter &u32(uint32_t v);
  ByteWriter &i32(int32_t v) { return u32(uint32_t(v)); }
  ByteWriter &u64(uint64_t v);
  ByteWriter &i64(int64_t v) { return u64(uint64_t(v)); }
  ByteWriter &f32(float v);
  ByteWriter &f64(double v);
  ByteWriter &raw(std::span<const uint8_t> bytes);
  ByteWriter &raw(std::string_view bytes);
  ByteWriter &zeros(uint64_t n);

  // GGUF string: u64 length + bytes (no terminator).
  ByteWriter &str(std::string_view s) { return u64(s.size()).raw(s); }
  // A string whose stored length says `declaredLen` but only `bytes` follow.
  ByteWriter &strWithLength(uint64_t declaredLen, std::string_view bytes) {
    return u64(declaredLen).raw(bytes);
  }
  // magic (u32), version (u32), tensor count (u64), kv count (u64).
  ByteWriter &header(uint32_t version, uint64_t nTensors, uint64_t nKv, uint32_t magic = kMagic);
  // A value's payload only (for ARRAY: elem type u32, count u64, elements).
  // Elements are written by their own type: a mismatching element makes a
  // malformed array on purpose.
  ByteWriter &valuePayload(const Value &v);
  // key string, type id (u32), payload.
  ByteWriter &kv(std::string_view key, const Value &v);
  // key string, an arbitrary type id, then raw payload bytes.
  ByteWriter &kvRaw(std::string_view key, uint32_t typeId, std::span<const uint8_t> payload);
  // name, n_dims (u32) = dims.size(), dims (u64 each), type id (u32), offset (u64).
  ByteWriter &tensorInfo(std::string_view name, std::span<const uint64_t> dims, uint32_t typeId,
                         uint64_t offset);
  // Same with an explicit n_dims that may disagree with dims.size().
  ByteWriter &tensorInfoRaw(std::string_view name, uint32_t nDims, std::span<const uint64_t> dims,
                            uint32_t typeId, uint64_t offset);
  // Appends `fill` bytes until size() is a multiple of `alignment` (> 0).
  ByteWriter &padTo(uint64_t alignment, uint8_t fill = 0);
  // Overwrite bytes already written (at + width must be <= size()).
  void patchU32(size_t at, uint32_t v);
  void patchU64(size_t at, uint64_t v);

private:
  std::vector<uint8_t> b_;
};

// ---------------------------------------------------------------------------
// Well-formed files.
class Writer {
public:
  // Produces a tensor's bytes when the file is written (exactly byteSize).
  using Producer = std::function<absl::StatusOr<std::vector<uint8_t>>()>;

  explicit Writer(uint32_t version = 3) : version_(version) {}

  uint32_t version() const { return version_; }

  // Metadata, written in insertion order. Setting an existing key replaces
  // its value in place.
  void set(std::string key, Value v);
  void setString(std::string key, std::string v) { set(std::move(key), val::str(std::move(v))); }
  void setU32(std::string key, uint32_t v) { set(std::move(key), val::u32(v)); }
  void setI32(std::string key, int32_t v) { set(std::move(key), val::i32(v)); }
  void setU64(std::string key, uint64_t v) { set(std::move(key), val::u64(v)); }
  void setF32(std::string key, float v) { set(std::move(key), val::f32(v)); }
  void setBool(std::string key, bool v) { set(std::move(key), val::boolean(v)); }
  bool remove(std::string_view key);
  const Value *find(std::string_view key) const;
  const std::vector<std::pair<std::string, Value>> &metadata() const { return kvs_; }

  // Tensors, in insertion order (that is also their data order). Fails on a
  // duplicate name, more than 4 dims, or a byte size that no interpretation
  // of `typeId` gives this shape (ggml_types.h); unknown type ids are
  // accepted as long as data is non-empty (use Tamper for wrong sizes).
  absl::Status addTensor(std::string name, std::vector<uint64_t> dims, uint32_t typeId,
                         std::vector<uint8_t> data);
  absl::Status addTensorLazy(std::string name, std::vector<uint64_t> dims, uint32_t typeId,
                             uint64_t byteSize, Producer produce);
  size_t tensorCount() const { return tensors_.size(); }

  // The alignment the layout uses: general.alignment when set to a positive
  // integer of any integer type, else 32.
  uint64_t alignment() const;

  // Where everything lands (absolute file offsets unless said otherwise).
  struct Layout {
    std::vector<uint64_t> kvOffsets;         // each key's start
    std::vector<uint64_t> tensorInfoOffsets; // each tensor info's start
    uint64_t headerEnd = 0;                  // end of the last tensor info
    uint64_t dataOffset = 0;                 // aligned start of the data section
    std::vector<uint64_t> tensorOffsets;     // relative to dataOffset
    std::vector<uint64_t> tensorSizes;
    uint64_t fileSize = 0; // before Tamper::truncateAt
  };
  absl::StatusOr<Layout> layout() const;

  absl::StatusOr<std::vector<uint8_t>> toBytes() const;
  // Streams to `path` (tensor data is produced one tensor at a time).
  absl::Status writeFile(const std::string &path) const;

  // Deliberate damage applied on output (tests of readers). Everything not
  // overridden is computed as for a good file: e.g. overriding one tensor's
  // offset leaves the other offsets and the data where they would be.
  struct TensorTamper {
    std::optional<std::string> name;
    std::optional<uint32_t> nDims;             // stored n_dims
    std::optional<std::vector<uint64_t>> dims; // stored dims (count = its size)
    std::optional<uint32_t> typeId;
    std::optional<uint64_t> offset; // relative to the data section
  };
  struct Tamper {
    std::optional<uint32_t> magic;
    std::optional<uint32_t> version;
    std::optional<uint64_t> tensorCount;    // stored count only
    std::optional<uint64_t> kvCount;        // stored count only
    std::map<size_t, TensorTamper> tensors; // by tensor index
    std::optional<uint64_t> truncateAt;     // cut the output to this many bytes
    bool padAfterLastTensor = true;         // ggml pads the file end to the alignment
    // Bytes appended after everything (after padding, before truncation).
    std::vector<uint8_t> trailing;
  };
  Tamper tamper;

private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t typeId = 0;
    uint64_t byteSize = 0;
    std::vector<uint8_t> data; // when !produce
    Producer produce;
  };
  absl::Status checkNewTensor(const std::string &name, const std::vector<uint64_t> &dims,
                              uint32_t typeId, uint64_t byteSize) const;
  absl::Status validateMetadata() const;
  // Header (everything before the data section, padding included).
  absl::StatusOr<ByteWriter> header(Layout *layoutOut) const;
  absl::StatusOr<std::vector<uint8_t>> tensorBytes(size_t i) const;

  uint32_t version_;
  std::vector<std::pair<std::string, Value>> kvs_;
  std::vector<Tensor> tensors_;
};

} // namespace tern::gguf
