// GGUF reader: versions 2 and 3, bounds-checked, memory-mapped.
//
// Every read checks bounds; any inconsistency is an error (absl::Status)
// naming the key or tensor and the byte offset where it was found. The
// reader never guesses a tensor's format: it records each tensor's type id,
// shape, offset and *extent* (bytes up to the next tensor or end of file);
// formats/mapping decides what the bytes mean.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::gguf {

inline constexpr uint32_t kMagic = 0x46554747; // "GGUF" little-endian
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr uint32_t kMaxDims = 4;

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char *valueTypeName(ValueType t);
bool isValidValueType(uint32_t t);

// One metadata value. Scalars use exactly one of u/i/f (by type); arrays hold
// their element type and elements (arrays may nest).
struct Value {
  ValueType type = ValueType::UINT8;
  uint64_t u = 0;                        // UINT8..UINT64, BOOL
  int64_t i = 0;                         // INT8..INT64
  double f = 0.0;                        // FLOAT32, FLOAT64
  std::string str;                       // STRING
  ValueType elemType = ValueType::UINT8; // ARRAY
  std::vector<Value> arr;                // ARRAY

  bool isInteger() const;
  bool isFloat() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }
  // Integer value of any integer/bool type; nullopt for other types or a
  // negative value asked for as unsigned.
  std::optional<uint64_t> asUInt() const;
  std::optional<int64_t> asInt() const;
  // Any numeric type as double.
  std::optional<double> asDouble() const;
  const std::string *asString() const { return type == ValueType::STRING ? &str : nullptr; }
  // Short human rendering (arrays summarised).
  std::string toString(size_t maxElems = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
  uint64_t offset = 0; // byte offset of the key in the file
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims; // ne[0] (row length, fastest) first
  uint32_t typeId = 0;        // raw ggml type id as stored
  uint64_t offset = 0;        // relative to the data section start
  uint64_t infoOffset = 0;    // where this tensor's info starts in the file
  // Bytes available to this tensor: up to the next tensor's offset (by offset
  // order) or the end of the file.
  uint64_t extent = 0;
  // Smallest byte size any known interpretation of typeId gives this shape;
  // the reader checks minBytes <= extent (so tensors never overlap).
  uint64_t minBytes = 0;
  const uint8_t *data = nullptr; // points into the mapping; extent bytes valid

  uint64_t numElements() const;
  std::string shapeString() const; // "[256, 512]"
};

// Limits that reject absurd headers before any allocation.
struct Limits {
  uint64_t maxTensors = 1u << 20;
  uint64_t maxKeys = 1u << 20;
  uint64_t maxStringBytes = 1u << 26; // 64 MiB
  uint64_t maxArrayElems = 1u << 26;  // 64 Mi elements
  uint32_t maxArrayDepth = 8;
  uint64_t maxDim = 1ull << 40;
};

class File {
public:
  // Opens and memory-maps `path`, then parses and validates it.
  static absl::StatusOr<std::unique_ptr<File>> open(const std::string &path,
                                                    const Limits &limits = {});
  // Parses a caller-owned buffer (must outlive the File). Used by fuzzers.
  static absl::StatusOr<std::unique_ptr<File>> fromBuffer(std::span<const uint8_t> bytes,
                                                          const Limits &limits = {});
  ~File();
  File(const File &) = delete;
  File &operator=(const File &) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t dataOffset() const { return dataOffset_; } // absolute, aligned
  uint64_t fileSize() const { return bytes_.size(); }
  std::span<const uint8_t> bytes() const { return bytes_; }
  const std::string &path() const { return path_; }

  const std::vector<KeyValue> &metadata() const { return kvs_; }
  const Value *find(std::string_view key) const;
  // Typed getters; nullopt when missing or of an incompatible type.
  std::optional<std::string> getString(std::string_view key) const;
  std::optional<uint64_t> getUInt(std::string_view key) const;
  std::optional<double> getFloat(std::string_view key) const;

  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const TensorInfo *findTensor(std::string_view name) const;

private:
  File() = default;
  absl::Status parse(const Limits &limits);

  std::string path_;
  void *map_ = nullptr;
  size_t mapSize_ = 0;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t dataOffset_ = 0;
  std::vector<KeyValue> kvs_;
  std::vector<TensorInfo> tensors_;
};

} // namespace tern::gguf
