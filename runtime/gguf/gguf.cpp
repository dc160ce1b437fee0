#include "runtime/gguf/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/formats/ggml_types.h"
#include "runtime/support/status.h"

namespace tern::gguf {
namespace {

absl::Status err(uint64_t offset, std::string msg) {
  return absl::InvalidArgumentError(fmt::format("at byte {}: {}", offset, msg));
}

bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size())
      return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates, out of range.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// Bounds-checked little-endian cursor over the file.
class Cursor {
public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }
  void seek(uint64_t p) { pos_ = p; }

  template <typename T> absl::Status read(T &out, std::string_view what) {
    if (remaining() < sizeof(T))
      return err(pos_, fmt::format("file truncated reading {} ({} bytes needed, {} left)", what,
                                   sizeof(T), remaining()));
    std::memcpy(&out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status readString(std::string &out, std::string_view what, uint64_t maxLen) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    if (auto s = read(len, fmt::format("length of {}", what)); !s.ok())
      return s;
    if (len > maxLen)
      return err(
          at, fmt::format("{}: string length {} exceeds the limit of {} bytes", what, len, maxLen));
    if (len > remaining())
      return err(at, fmt::format("{}: string length {} runs past the end of the file ({} bytes "
                                 "left)",
                                 what, len, remaining()));
    out.assign(reinterpret_cast<const char *>(b_.data() + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }

private:
  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

// Smallest on-disk size of one element of a value type (for count checks
// before allocating).
uint64_t minElemBytes(ValueType t) {
  switch (t) {
  case ValueType::UINT8:
  case ValueType::INT8:
  case ValueType::BOOL:
    return 1;
  case ValueType::UINT16:
  case ValueType::INT16:
    return 2;
  case ValueType::UINT32:
  case ValueType::INT32:
  case ValueType::FLOAT32:
    return 4;
  case ValueType::UINT64:
  case ValueType::INT64:
  case ValueType::FLOAT64:
  case ValueType::STRING: // u64 length
    return 8;
  case ValueType::ARRAY: // u32 type + u64 count
    return 12;
  }
  return 1;
}

template <typename T> absl::Status readScalar(Cursor &c, Value &v, std::string_view what) {
  T x{};
  if (auto s = c.read(x, what); !s.ok())
    return s;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    v.f = static_cast<double>(x);
  else if constexpr (std::is_signed_v<T>)
    v.i = static_cast<int64_t>(x);
  else
    v.u = static_cast<uint64_t>(x);
  return absl::OkStatus();
}

absl::Status readValue(Cursor &c, ValueType type, Value &v, const std::string &key,
                       const Limits &limits, uint32_t depth) {
  v.type = type;
  switch (type) {
  case ValueType::UINT8:
    return readScalar<uint8_t>(c, v, key);
  case ValueType::INT8:
    return readScalar<int8_t>(c, v, key);
  case ValueType::UINT16:
    return readScalar<uint16_t>(c, v, key);
  case ValueType::INT16:
    return readScalar<int16_t>(c, v, key);
  case ValueType::UINT32:
    return readScalar<uint32_t>(c, v, key);
  case ValueType::INT32:
    return readScalar<int32_t>(c, v, key);
  case ValueType::UINT64:
    return readScalar<uint64_t>(c, v, key);
  case ValueType::INT64:
    return readScalar<int64_t>(c, v, key);
  case ValueType::FLOAT32:
    return readScalar<float>(c, v, key);
  case ValueType::FLOAT64:
    return readScalar<double>(c, v, key);
  case ValueType::BOOL: {
    const uint64_t at = c.pos();
    if (auto s = readScalar<uint8_t>(c, v, key); !s.ok())
      return s;
    if (v.u > 1)
      return err(at, fmt::format("key '{}': bool value {} is neither 0 nor 1", key, v.u));
    return absl::OkStatus();
  }
  case ValueType::STRING:
    return c.readString(v.str, fmt::format("value of key '{}'", key), limits.maxStringBytes);
  case ValueType::ARRAY: {
    const uint64_t at = c.pos();
    if (depth >= limits.maxArrayDepth)
      return err(at,
                 fmt::format("key '{}': arrays nested deeper than {}", key, limits.maxArrayDepth));
    uint32_t et = 0;
    uint64_t n = 0;
    if (auto s = c.read(et, fmt::format("array type of key '{}'", key)); !s.ok())
      return s;
    if (!isValidValueType(et))
      return err(at, fmt::format("key '{}': unknown array element type {}", key, et));
    if (auto s = c.read(n, fmt::format("array length of key '{}'", key)); !s.ok())
      return s;
    v.elemType = static_cast<ValueType>(et);
    if (n > limits.maxArrayElems)
      return err(at, fmt::format("key '{}': array of {} elements exceeds the limit of {}", key, n,
                                 limits.maxArrayElems));
    if (n > c.remaining() / minElemBytes(v.elemType))
      return err(at, fmt::format("key '{}': array of {} {} elements cannot fit in the {} bytes "
                                 "left in the file",
                                 key, n, valueTypeName(v.elemType), c.remaining()));
    v.arr.resize(n);
    for (uint64_t k = 0; k < n; ++k)
      if (auto s = readValue(c, v.elemType, v.arr[k], key, limits, depth + 1); !s.ok())
        return s;
    return absl::OkStatus();
  }
  }
  return err(c.pos(),
             fmt::format("key '{}': unknown value type {}", key, static_cast<uint32_t>(type)));
}

} // namespace

const char *valueTypeName(ValueType t) {
  static const char *kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                 "int32",  "float32", "bool",   "string", "array",
                                 "uint64", "int64",   "float64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "unknown";
}

bool isValidValueType(uint32_t t) { return t <= 12; }

bool Value::isInteger() const {
  switch (type) {
  case ValueType::UINT8:
  case ValueType::INT8:
  case ValueType::UINT16:
  case ValueType::INT16:
  case ValueType::UINT32:
  case ValueType::INT32:
  case ValueType::UINT64:
  case ValueType::INT64:
  case ValueType::BOOL:
    return true;
  default:
    return false;
  }
}

static bool isSigned(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
         t == ValueType::INT64;
}

std::optional<uint64_t> Value::asUInt() const {
  if (!isInteger())
    return std::nullopt;
  if (isSigned(type)) {
    if (i < 0)
      return std::nullopt;
    return static_cast<uint64_t>(i);
  }
  return u;
}

std::optional<int64_t> Value::asInt() const {
  if (!isInteger())
    return std::nullopt;
  if (isSigned(type))
    return i;
  if (u > static_cast<uint64_t>(INT64_MAX))
    return std::nullopt;
  return static_cast<int64_t>(u);
}

std::optional<double> Value::asDouble() const {
  if (isFloat())
    return f;
  if (isSigned(type))
    return static_cast<double>(i);
  if (isInteger())
    return static_cast<double>(u);
  return std::nullopt;
}

std::string Value::toString(size_t maxElems) const {
  switch (type) {
  case ValueType::STRING: {
    std::string s = str.size() > 60 ? str.substr(0, 57) + "..." : str;
    return fmt::format("\"{}\"", s);
  }
  case ValueType::BOOL:
    return u ? "true" : "false";
  case ValueType::FLOAT32:
  case ValueType::FLOAT64:
    return fmt::format("{}", f);
  case ValueType::ARRAY: {
    std::string s = fmt::format("{}[{}]", valueTypeName(elemType), arr.size());
    if (arr.size() <= maxElems) {
      s += " {";
      for (size_t k = 0; k < arr.size(); ++k)
        s += (k ? ", " : "") + arr[k].toString(maxElems);
      s += "}";
    }
    return s;
  }
  default:
    return isSigned(type) ? fmt::format("{}", i) : fmt::format("{}", u);
  }
}

uint64_t TensorInfo::numElements() const {
  uint64_t n = 1;
  for (uint64_t d : dims)
    n *= d;
  return n;
}

std::string TensorInfo::shapeString() const {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k)
    s += fmt::format("{}{}", k ? ", " : "", dims[k]);
  return s + "]";
}

absl::StatusOr<std::unique_ptr<File>> File::open(const std::string &path, const Limits &limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(fmt::format("{}: not a regular file", path));
  }
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void *m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      return absl::InternalError(fmt::format("{}: mmap failed: {}", path, std::strerror(errno)));
    }
    f->map_ = m;
    f->mapSize_ = size;
    f->bytes_ = {static_cast<const uint8_t *>(m), size};
  }
  ::close(fd);
  if (auto s = f->parse(limits); !s.ok())
    return withContext(s, path);
  return f;
}

absl::StatusOr<std::unique_ptr<File>> File::fromBuffer(std::span<const uint8_t> bytes,
                                                       const Limits &limits) {
  std::unique_ptr<File> f(new File());
  f->path_ = "<buffer>";
  f->bytes_ = bytes;
  if (auto s = f->parse(limits); !s.ok())
    return s;
  return f;
}

File::~File() {
  if (map_)
    ::munmap(map_, mapSize_);
}

absl::Status File::parse(const Limits &limits) {
  Cursor c(bytes_);
  uint32_t magic = 0;
  if (auto s = c.read(magic, "magic"); !s.ok())
    return s;
  if (magic != kMagic)
    return err(0, fmt::format("bad magic 0x{:08x}: not a GGUF file (expected \"GGUF\")", magic));
  if (auto s = c.read(version_, "version"); !s.ok())
    return s;
  if (version_ != 2 && version_ != 3)
    return err(4, fmt::format("unsupported GGUF version {} (supported: 2, 3)", version_));
  uint64_t nTensors = 0, nKv = 0;
  if (auto s = c.read(nTensors, "tensor count"); !s.ok())
    return s;
  if (auto s = c.read(nKv, "metadata key/value count"); !s.ok())
    return s;
  // Each tensor info is at least 8 (name len) + 4 (n_dims) + 8 + 4 + 8 bytes;
  // each key/value at least 8 + 4 + 1.
  if (nTensors > limits.maxTensors || nTensors > c.remaining() / 32)
    return err(8, fmt::format("tensor count {} is absurd for a file of {} bytes", nTensors,
                              bytes_.size()));
  if (nKv > limits.maxKeys || nKv > c.remaining() / 13)
    return err(16, fmt::format("metadata key/value count {} is absurd for a file of {} bytes", nKv,
                               bytes_.size()));

  std::unordered_set<std::string> keys;
  kvs_.reserve(nKv);
  for (uint64_t k = 0; k < nKv; ++k) {
    KeyValue kv;
    kv.offset = c.pos();
    if (auto s = c.readString(kv.key, fmt::format("key #{}", k), limits.maxStringBytes); !s.ok())
      return s;
    if (kv.key.empty())
      return err(kv.offset, fmt::format("key #{} is empty", k));
    if (!validUtf8(kv.key))
      return err(kv.offset, fmt::format("key #{} is not valid UTF-8", k));
    if (!keys.insert(kv.key).second)
      return err(kv.offset, fmt::format("duplicate key '{}'", kv.key));
    uint32_t type = 0;
    const uint64_t typeAt = c.pos();
    if (auto s = c.read(type, fmt::format("value type of key '{}'", kv.key)); !s.ok())
      return s;
    if (!isValidValueType(type))
      return err(typeAt, fmt::format("key '{}': unknown value type {}", kv.key, type));
    if (auto s = readValue(c, static_cast<ValueType>(type), kv.value, kv.key, limits, 0); !s.ok())
      return s;
    kvs_.push_back(std::move(kv));
  }

  if (const Value *a = find("general.alignment")) {
    const uint64_t at = [&] {
      for (const auto &kv : kvs_)
        if (kv.key == "general.alignment")
          return kv.offset;
      return uint64_t{0};
    }();
    auto v = a->asUInt();
    if (a->type != ValueType::UINT32 || !v)
      return err(
          at, fmt::format("key 'general.alignment' must be uint32, is {}", valueTypeName(a->type)));
    if (*v == 0 || (*v & (*v - 1)) != 0)
      return err(at, fmt::format("key 'general.alignment' = {} is not a power of two", *v));
    alignment_ = *v;
  }

  std::unordered_set<std::string> names;
  tensors_.reserve(nTensors);
  for (uint64_t t = 0; t < nTensors; ++t) {
    TensorInfo ti;
    ti.infoOffset = c.pos();
    if (auto s = c.readString(ti.name, fmt::format("name of tensor #{}", t), limits.maxStringBytes);
        !s.ok())
      return s;
    if (ti.name.empty() || !validUtf8(ti.name))
      return err(ti.infoOffset, fmt::format("tensor #{} has an empty or non-UTF-8 name", t));
    if (!names.insert(ti.name).second)
      return err(ti.infoOffset, fmt::format("duplicate tensor name '{}'", ti.name));
    uint32_t nDims = 0;
    const uint64_t dimsAt = c.pos();
    if (auto s = c.read(nDims, fmt::format("dimension count of tensor '{}'", ti.name)); !s.ok())
      return s;
    if (nDims == 0 || nDims > kMaxDims)
      return err(dimsAt, fmt::format("tensor '{}': {} dimensions (must be 1..{})", ti.name, nDims,
                                     kMaxDims));
    uint64_t nElem = 1;
    for (uint32_t d = 0; d < nDims; ++d) {
      uint64_t dim = 0;
      const uint64_t at = c.pos();
      if (auto s = c.read(dim, fmt::format("dimension {} of tensor '{}'", d, ti.name)); !s.ok())
        return s;
      if (dim == 0 || dim > limits.maxDim)
        return err(at,
                   fmt::format("tensor '{}': dimension {} = {} is out of range", ti.name, d, dim));
      if (nElem > UINT64_MAX / dim || nElem * dim > (1ull << 50))
        return err(at, fmt::format("tensor '{}': element count overflows", ti.name));
      nElem *= dim;
      ti.dims.push_back(dim);
    }
    const uint64_t typeAt = c.pos();
    if (auto s = c.read(ti.typeId, fmt::format("type of tensor '{}'", ti.name)); !s.ok())
      return s;
    const auto cands = formats::lookupId(ti.typeId);
    if (cands.empty())
      return err(typeAt, fmt::format("tensor '{}': unknown ggml type id {}", ti.name, ti.typeId));
    ti.minBytes = UINT64_MAX;
    for (const auto *cand : cands)
      if (auto sz = formats::byteSize(*cand, ti.dims))
        ti.minBytes = std::min(ti.minBytes, *sz);
    if (ti.minBytes == UINT64_MAX) {
      std::string names;
      for (const auto *cand : cands)
        names += fmt::format("{}{}", names.empty() ? "" : " or ", cand->name);
      return err(typeAt, fmt::format("tensor '{}': shape {} cannot be stored as type {} ({})",
                                     ti.name, ti.shapeString(), ti.typeId, names));
    }
    const uint64_t offAt = c.pos();
    if (auto s = c.read(ti.offset, fmt::format("data offset of tensor '{}'", ti.name)); !s.ok())
      return s;
    if (ti.offset % alignment_ != 0)
      return err(offAt, fmt::format("tensor '{}': data offset {} is not aligned to {}", ti.name,
                                    ti.offset, alignment_));
    tensors_.push_back(std::move(ti));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t end = c.pos();
  dataOffset_ = (end + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) {
    dataOffset_ = std::min<uint64_t>(dataOffset_, bytes_.size());
    return absl::OkStatus();
  }
  if (dataOffset_ > bytes_.size())
    return err(end, fmt::format("file truncated: data section would start at byte {} but the "
                                "file has {} bytes",
                                dataOffset_, bytes_.size()));
  const uint64_t dataSize = bytes_.size() - dataOffset_;

  std::vector<size_t> order(tensors_.size());
  for (size_t k = 0; k < order.size(); ++k)
    order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 0; k < order.size(); ++k) {
    TensorInfo &ti = tensors_[order[k]];
    if (ti.offset > dataSize || ti.minBytes > dataSize - ti.offset)
      return err(dataOffset_ + std::min(ti.offset, dataSize),
                 fmt::format("tensor '{}': data [{}, +{}) runs past the end of the file (data "
                             "section holds {} bytes)",
                             ti.name, ti.offset, ti.minBytes, dataSize));
    const uint64_t next = k + 1 < order.size() ? tensors_[order[k + 1]].offset : dataSize;
    if (ti.offset + ti.minBytes > next) {
      const TensorInfo &o = tensors_[order[k + 1]];
      return err(dataOffset_ + o.offset,
                 fmt::format("tensors '{}' [{}, +{}) and '{}' (at {}) overlap", ti.name, ti.offset,
                             ti.minBytes, o.name, o.offset));
    }
    ti.extent = next - ti.offset;
    ti.data = bytes_.data() + dataOffset_ + ti.offset;
  }
  return absl::OkStatus();
}

const Value *File::find(std::string_view key) const {
  for (const auto &kv : kvs_)
    if (kv.key == key)
      return &kv.value;
  return nullptr;
}

std::optional<std::string> File::getString(std::string_view key) const {
  const Value *v = find(key);
  if (!v || v->type != ValueType::STRING)
    return std::nullopt;
  return v->str;
}

std::optional<uint64_t> File::getUInt(std::string_view key) const {
  const Value *v = find(key);
  return v ? v->asUInt() : std::nullopt;
}

std::optional<double> File::getFloat(std::string_view key) const {
  const Value *v = find(key);
  return v ? v->asDouble() : std::nullopt;
}

const TensorInfo *File::findTensor(std::string_view name) const {
  for (const auto &t : tensors_)
    if (t.name == name)
      return &t;
  return nullptr;
}

} // namespace tern::gguf
