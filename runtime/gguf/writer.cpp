#include "runtime/gguf/writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_set>

#include "fmt/format.h"
#include "runtime/formats/ggml_types.h"

namespace tern::gguf {

// ---------------------------------------------------------------------------
// Values

namespace val {
namespace {
Value scalarU(ValueType t, uint64_t v) {
  Value x;
  x.type = t;
  x.u = v;
  return x;
}
Value scalarI(ValueType t, int64_t v) {
  Value x;
  x.type = t;
  x.i = v;
  return x;
}
Value scalarF(ValueType t, double v) {
  Value x;
  x.type = t;
  x.f = v;
  return x;
}
} // namespace

Value u8(uint8_t v) { return scalarU(ValueType::UINT8, v); }
Value i8(int8_t v) { return scalarI(ValueType::INT8, v); }
Value u16(uint16_t v) { return scalarU(ValueType::UINT16, v); }
Value i16(int16_t v) { return scalarI(ValueType::INT16, v); }
Value u32(uint32_t v) { return scalarU(ValueType::UINT32, v); }
Value i32(int32_t v) { return scalarI(ValueType::INT32, v); }
Value u64(uint64_t v) { return scalarU(ValueType::UINT64, v); }
Value i64(int64_t v) { return scalarI(ValueType::INT64, v); }
Value f32(float v) { return scalarF(ValueType::FLOAT32, v); }
Value f64(double v) { return scalarF(ValueType::FLOAT64, v); }
Value boolean(bool v) { return scalarU(ValueType::BOOL, v ? 1 : 0); }
Value str(std::string v) {
  Value x;
  x.type = ValueType::STRING;
  x.str = std::move(v);
  return x;
}
Value array(ValueType elemType, std::vector<Value> elems) {
  Value x;
  x.type = ValueType::ARRAY;
  x.elemType = elemType;
  x.arr = std::move(elems);
  return x;
}
Value strings(const std::vector<std::string> &v) {
  std::vector<Value> e;
  e.reserve(v.size());
  for (const auto &s : v)
    e.push_back(str(s));
  return array(ValueType::STRING, std::move(e));
}
Value i32s(const std::vector<int32_t> &v) {
  std::vector<Value> e;
  e.reserve(v.size());
  for (int32_t x : v)
    e.push_back(i32(x));
  return array(ValueType::INT32, std::move(e));
}
Value u32s(const std::vector<uint32_t> &v) {
  std::vector<Value> e;
  e.reserve(v.size());
  for (uint32_t x : v)
    e.push_back(u32(x));
  return array(ValueType::UINT32, std::move(e));
}
Value f32s(const std::vector<float> &v) {
  std::vector<Value> e;
  e.reserve(v.size());
  for (float x : v)
    e.push_back(f32(x));
  return array(ValueType::FLOAT32, std::move(e));
}
} // namespace val

// ---------------------------------------------------------------------------
// ByteWriter

ByteWriter &ByteWriter::u8(uint8_t v) {
  b_.push_back(v);
  return *this;
}
ByteWriter &ByteWriter::u16(uint16_t v) {
  for (int k = 0; k < 2; ++k)
    b_.push_back(uint8_t(v >> (8 * k)));
  return *this;
}
ByteWriter &ByteWriter::u32(uint32_t v) {
  for (int k = 0; k < 4; ++k)
    b_.push_back(uint8_t(v >> (8 * k)));
  return *this;
}
ByteWriter &ByteWriter::u64(uint64_t v) {
  for (int k = 0; k < 8; ++k)
    b_.push_back(uint8_t(v >> (8 * k)));
  return *this;
}
ByteWriter &ByteWriter::f32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u32(u);
}
ByteWriter &ByteWriter::f64(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  return u64(u);
}
ByteWriter &ByteWriter::raw(std::span<const uint8_t> bytes) {
  b_.insert(b_.end(), bytes.begin(), bytes.end());
  return *this;
}
ByteWriter &ByteWriter::raw(std::string_view bytes) {
  b_.insert(b_.end(), bytes.begin(), bytes.end());
  return *this;
}
ByteWriter &ByteWriter::zeros(uint64_t n) {
  b_.insert(b_.end(), n, 0);
  return *this;
}
ByteWriter &ByteWriter::header(uint32_t version, uint64_t nTensors, uint64_t nKv, uint32_t magic) {
  return u32(magic).u32(version).u64(nTensors).u64(nKv);
}

ByteWriter &ByteWriter::valuePayload(const Value &v) {
  switch (v.type) {
  case ValueType::UINT8:
  case ValueType::BOOL:
    return u8(uint8_t(v.u));
  case ValueType::INT8:
    return i8(int8_t(v.i));
  case ValueType::UINT16:
    return u16(uint16_t(v.u));
  case ValueType::INT16:
    return i16(int16_t(v.i));
  case ValueType::UINT32:
    return u32(uint32_t(v.u));
  case ValueType::INT32:
    return i32(int32_t(v.i));
  case ValueType::UINT64:
    return u64(v.u);
  case ValueType::INT64:
    return i64(v.i);
  case ValueType::FLOAT32:
    return f32(float(v.f));
  case ValueType::FLOAT64:
    return f64(v.f);
  case ValueType::STRING:
    return str(v.str);
  case ValueType::ARRAY:
    u32(uint32_t(v.elemType)).u64(v.arr.size());
    for (const Value &e : v.arr)
      valuePayload(e);
    return *this;
  }
  return *this; // unknown type id: no payload
}

ByteWriter &ByteWriter::kv(std::string_view key, const Value &v) {
  return str(key).u32(uint32_t(v.type)).valuePayload(v);
}
ByteWriter &ByteWriter::kvRaw(std::string_view key, uint32_t typeId,
                              std::span<const uint8_t> payload) {
  return str(key).u32(typeId).raw(payload);
}
ByteWriter &ByteWriter::tensorInfo(std::string_view name, std::span<const uint64_t> dims,
                                   uint32_t typeId, uint64_t offset) {
  return tensorInfoRaw(name, uint32_t(dims.size()), dims, typeId, offset);
}
ByteWriter &ByteWriter::tensorInfoRaw(std::string_view name, uint32_t nDims,
                                      std::span<const uint64_t> dims, uint32_t typeId,
                                      uint64_t offset) {
  str(name).u32(nDims);
  for (uint64_t d : dims)
    u64(d);
  return u32(typeId).u64(offset);
}
ByteWriter &ByteWriter::padTo(uint64_t alignment, uint8_t fill) {
  if (alignment == 0)
    return *this;
  while (b_.size() % alignment != 0)
    b_.push_back(fill);
  return *this;
}
void ByteWriter::patchU32(size_t at, uint32_t v) {
  for (int k = 0; k < 4 && at + k < b_.size(); ++k)
    b_[at + k] = uint8_t(v >> (8 * k));
}
void ByteWriter::patchU64(size_t at, uint64_t v) {
  for (int k = 0; k < 8 && at + k < b_.size(); ++k)
    b_[at + k] = uint8_t(v >> (8 * k));
}

// ---------------------------------------------------------------------------
// Writer

namespace {
uint64_t alignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

absl::Status checkValue(const std::string &key, const Value &v, std::string_view path, int depth) {
  if (depth > 8)
    return absl::InvalidArgumentError(
        fmt::format("metadata key '{}': arrays nested deeper than 8", key));
  if (!isValidValueType(uint32_t(v.type)))
    return absl::InvalidArgumentError(
        fmt::format("metadata key '{}'{}: invalid value type {}", key, path, uint32_t(v.type)));
  if (v.type != ValueType::ARRAY)
    return absl::OkStatus();
  if (!isValidValueType(uint32_t(v.elemType)))
    return absl::InvalidArgumentError(fmt::format(
        "metadata key '{}'{}: invalid array element type {}", key, path, uint32_t(v.elemType)));
  for (size_t i = 0; i < v.arr.size(); ++i) {
    if (v.arr[i].type != v.elemType)
      return absl::InvalidArgumentError(
          fmt::format("metadata key '{}'{}[{}]: element of type {} in an array of {}", key, path, i,
                      uint32_t(v.arr[i].type), uint32_t(v.elemType)));
    if (v.elemType == ValueType::ARRAY)
      if (auto s = checkValue(key, v.arr[i], fmt::format("{}[{}]", path, i), depth + 1); !s.ok())
        return s;
  }
  return absl::OkStatus();
}
} // namespace

void Writer::set(std::string key, Value v) {
  for (auto &kv : kvs_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kvs_.emplace_back(std::move(key), std::move(v));
}

bool Writer::remove(std::string_view key) {
  auto it = std::find_if(kvs_.begin(), kvs_.end(), [&](const auto &kv) { return kv.first == key; });
  if (it == kvs_.end())
    return false;
  kvs_.erase(it);
  return true;
}

const Value *Writer::find(std::string_view key) const {
  for (const auto &kv : kvs_)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

uint64_t Writer::alignment() const {
  if (const Value *a = find("general.alignment")) {
    switch (a->type) {
    case ValueType::UINT8:
    case ValueType::UINT16:
    case ValueType::UINT32:
    case ValueType::UINT64:
      if (a->u > 0)
        return a->u;
      break;
    case ValueType::INT8:
    case ValueType::INT16:
    case ValueType::INT32:
    case ValueType::INT64:
      if (a->i > 0)
        return uint64_t(a->i);
      break;
    default:
      break;
    }
  }
  return kDefaultAlignment;
}

absl::Status Writer::checkNewTensor(const std::string &name, const std::vector<uint64_t> &dims,
                                    uint32_t typeId, uint64_t byteSize) const {
  for (const auto &t : tensors_)
    if (t.name == name)
      return absl::InvalidArgumentError(fmt::format("tensor '{}' added twice", name));
  if (dims.empty() || dims.size() > kMaxDims)
    return absl::InvalidArgumentError(
        fmt::format("tensor '{}': {} dims (1..{} allowed)", name, dims.size(), kMaxDims));
  auto cands = formats::lookupId(typeId);
  if (cands.empty()) {
    if (byteSize == 0)
      return absl::InvalidArgumentError(
          fmt::format("tensor '{}': unknown type id {} with no data", name, typeId));
    return absl::OkStatus();
  }
  std::string sizes;
  for (const auto *t : cands) {
    auto sz = formats::byteSize(*t, dims);
    if (sz && *sz == byteSize)
      return absl::OkStatus();
    sizes += fmt::format("{}{} -> {}", sizes.empty() ? "" : ", ", t->name,
                         sz ? fmt::format("{} bytes", *sz) : std::string("unstorable shape"));
  }
  std::string shape;
  for (size_t i = 0; i < dims.size(); ++i)
    shape += fmt::format("{}{}", i ? ", " : "", dims[i]);
  return absl::InvalidArgumentError(
      fmt::format("tensor '{}' [{}] type id {}: {} data bytes match no interpretation ({})", name,
                  shape, typeId, byteSize, sizes));
}

absl::Status Writer::addTensor(std::string name, std::vector<uint64_t> dims, uint32_t typeId,
                               std::vector<uint8_t> data) {
  if (auto s = checkNewTensor(name, dims, typeId, data.size()); !s.ok())
    return s;
  Tensor t;
  t.name = std::move(name);
  t.dims = std::move(dims);
  t.typeId = typeId;
  t.byteSize = data.size();
  t.data = std::move(data);
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status Writer::addTensorLazy(std::string name, std::vector<uint64_t> dims, uint32_t typeId,
                                   uint64_t byteSize, Producer produce) {
  if (!produce)
    return absl::InvalidArgumentError(fmt::format("tensor '{}': no producer", name));
  if (auto s = checkNewTensor(name, dims, typeId, byteSize); !s.ok())
    return s;
  Tensor t;
  t.name = std::move(name);
  t.dims = std::move(dims);
  t.typeId = typeId;
  t.byteSize = byteSize;
  t.produce = std::move(produce);
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status Writer::validateMetadata() const {
  std::unordered_set<std::string_view> seen;
  for (const auto &[k, v] : kvs_) {
    if (!seen.insert(k).second)
      return absl::InvalidArgumentError(fmt::format("metadata key '{}' set twice", k));
    if (auto s = checkValue(k, v, "", 0); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<ByteWriter> Writer::header(Layout *out) const {
  if (auto s = validateMetadata(); !s.ok())
    return s;
  const uint64_t align = alignment();
  Layout L;
  // Data layout first: it only depends on sizes and alignment.
  uint64_t off = 0;
  for (const auto &t : tensors_) {
    off = alignUp(off, align);
    L.tensorOffsets.push_back(off);
    L.tensorSizes.push_back(t.byteSize);
    off += t.byteSize;
  }
  uint64_t dataSize = tamper.padAfterLastTensor ? alignUp(off, align) : off;

  ByteWriter b;
  b.header(tamper.version.value_or(version_), tamper.tensorCount.value_or(tensors_.size()),
           tamper.kvCount.value_or(kvs_.size()), tamper.magic.value_or(kMagic));
  for (const auto &[k, v] : kvs_) {
    L.kvOffsets.push_back(b.size());
    b.kv(k, v);
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor &t = tensors_[i];
    L.tensorInfoOffsets.push_back(b.size());
    auto it = tamper.tensors.find(i);
    const TensorTamper *tt = it == tamper.tensors.end() ? nullptr : &it->second;
    const std::string &name = tt && tt->name ? *tt->name : t.name;
    const std::vector<uint64_t> &dims = tt && tt->dims ? *tt->dims : t.dims;
    uint32_t nDims = tt && tt->nDims ? *tt->nDims : uint32_t(dims.size());
    uint32_t typeId = tt && tt->typeId ? *tt->typeId : t.typeId;
    uint64_t offset = tt && tt->offset ? *tt->offset : L.tensorOffsets[i];
    b.tensorInfoRaw(name, nDims, dims, typeId, offset);
  }
  L.headerEnd = b.size();
  b.padTo(align);
  L.dataOffset = b.size();
  L.fileSize = L.dataOffset + dataSize + tamper.trailing.size();
  if (out)
    *out = std::move(L);
  return b;
}

absl::StatusOr<Writer::Layout> Writer::layout() const {
  Layout L;
  auto h = header(&L);
  if (!h.ok())
    return h.status();
  return L;
}

absl::StatusOr<std::vector<uint8_t>> Writer::tensorBytes(size_t i) const {
  const Tensor &t = tensors_[i];
  if (!t.produce)
    return t.data;
  auto d = t.produce();
  if (!d.ok())
    return absl::Status(d.status().code(),
                        fmt::format("tensor '{}': {}", t.name, std::string(d.status().message())));
  if (d->size() != t.byteSize)
    return absl::InternalError(fmt::format("tensor '{}': producer gave {} bytes, declared {}",
                                           t.name, d->size(), t.byteSize));
  return d;
}

namespace {
// Appends data to a sink, honouring a truncation point.
template <typename Sink> class Emitter {
public:
  Emitter(Sink sink, std::optional<uint64_t> limit) : sink_(std::move(sink)), limit_(limit) {}
  absl::Status emit(std::span<const uint8_t> bytes) {
    if (limit_) {
      if (pos_ >= *limit_)
        return absl::OkStatus();
      if (bytes.size() > *limit_ - pos_)
        bytes = bytes.first(*limit_ - pos_);
    }
    pos_ += bytes.size();
    return sink_(bytes);
  }
  absl::Status zeros(uint64_t n) {
    static const uint8_t z[256] = {};
    while (n > 0) {
      uint64_t k = std::min<uint64_t>(n, sizeof z);
      if (auto s = emit({z, k}); !s.ok())
        return s;
      n -= k;
    }
    return absl::OkStatus();
  }
  uint64_t pos() const { return pos_; }

private:
  Sink sink_;
  std::optional<uint64_t> limit_;
  uint64_t pos_ = 0;
};

template <typename E>
absl::Status writeAll(const Writer &w, const ByteWriter &head, const Writer::Layout &L, E &em,
                      const std::function<absl::StatusOr<std::vector<uint8_t>>(size_t)> &data) {
  if (auto s = em.emit(head.bytes()); !s.ok())
    return s;
  uint64_t rel = 0;
  for (size_t i = 0; i < L.tensorOffsets.size(); ++i) {
    if (auto s = em.zeros(L.tensorOffsets[i] - rel); !s.ok())
      return s;
    auto d = data(i);
    if (!d.ok())
      return d.status();
    if (auto s = em.emit(*d); !s.ok())
      return s;
    rel = L.tensorOffsets[i] + d->size();
  }
  if (w.tamper.padAfterLastTensor && rel % w.alignment() != 0)
    if (auto s = em.zeros(w.alignment() - rel % w.alignment()); !s.ok())
      return s;
  return em.emit(w.tamper.trailing);
}
} // namespace

absl::StatusOr<std::vector<uint8_t>> Writer::toBytes() const {
  Layout L;
  auto head = header(&L);
  if (!head.ok())
    return head.status();
  std::vector<uint8_t> out;
  out.reserve(tamper.truncateAt ? std::min(*tamper.truncateAt, L.fileSize) : L.fileSize);
  Emitter em(
      [&](std::span<const uint8_t> b) {
        out.insert(out.end(), b.begin(), b.end());
        return absl::OkStatus();
      },
      tamper.truncateAt);
  if (auto s = writeAll(*this, *head, L, em, [&](size_t i) { return tensorBytes(i); }); !s.ok())
    return s;
  return out;
}

absl::Status Writer::writeFile(const std::string &path) const {
  Layout L;
  auto head = header(&L);
  if (!head.ok())
    return head.status();
  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f)
    return absl::NotFoundError(
        fmt::format("cannot open '{}' for writing: {}", path, std::strerror(errno)));
  Emitter em(
      [&](std::span<const uint8_t> b) -> absl::Status {
        if (!b.empty() && std::fwrite(b.data(), 1, b.size(), f.get()) != b.size())
          return absl::DataLossError(
              fmt::format("writing '{}' failed: {}", path, std::strerror(errno)));
        return absl::OkStatus();
      },
      tamper.truncateAt);
  if (auto s = writeAll(*this, *head, L, em, [&](size_t i) { return tensorBytes(i); }); !s.ok())
    return s;
  FILE *raw = f.release();
  if (std::fclose(raw) != 0)
    return absl::DataLossError(fmt::format("closing '{}' failed: {}", path, std::strerror(errno)));
  return absl::OkStatus();
}

} // namespace tern::gguf
