// Byte-level GGUF assembly for tests that need files the writer would never
// produce: wrong magic, absurd counts, overlapping or misaligned tensors,
// type ids of the wrong size. Every field is written as given.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tern::testing {

class RawGguf {
public:
  std::vector<uint8_t> bytes;
  // Offsets where each section of the file begins (for truncation tests).
  std::vector<size_t> boundaries;

  void mark() { boundaries.push_back(bytes.size()); }
  void u8(uint8_t v) { bytes.push_back(v); }
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void f32(float v) { put(&v, 4); }
  void str(std::string_view s) {
    u64(s.size());
    put(s.data(), s.size());
  }
  void put(const void *p, size_t n) {
    auto *c = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), c, c + n);
  }
  void header(uint32_t version, uint64_t nTensors, uint64_t nKv, uint32_t magic = 0x46554747) {
    mark();
    u32(magic);
    u32(version);
    u64(nTensors);
    u64(nKv);
  }
  void kvString(std::string_view k, std::string_view v) {
    mark();
    str(k);
    u32(8);
    str(v);
  }
  void kvU32(std::string_view k, uint32_t v) {
    mark();
    str(k);
    u32(4);
    u32(v);
  }
  void kvF32(std::string_view k, float v) {
    mark();
    str(k);
    u32(6);
    f32(v);
  }
  void tensorInfo(std::string_view name, const std::vector<uint64_t> &dims, uint32_t type,
                  uint64_t offset) {
    mark();
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims)
      u64(d);
    u32(type);
    u64(offset);
  }
  void alignTo(size_t a) {
    while (bytes.size() % a)
      bytes.push_back(0);
  }
};

// A tensor for buildModel: data is written at the next aligned offset unless
// offset is given.
struct RawTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  std::vector<uint8_t> data;
  int64_t offset = -1;
};

// A small consistent GGUF v3 (arch given) holding `tensors`.
inline RawGguf buildModel(const std::vector<RawTensor> &tensors, std::string_view arch = "bitnet",
                          int64_t fileType = -1) {
  RawGguf g;
  g.header(3, tensors.size(), fileType >= 0 ? 3 : 2);
  g.kvString("general.architecture", arch);
  g.kvU32("general.alignment", 32);
  if (fileType >= 0)
    g.kvU32("general.file_type", static_cast<uint32_t>(fileType));
  std::vector<uint64_t> offs;
  uint64_t off = 0;
  for (const auto &t : tensors) {
    const uint64_t o = t.offset >= 0 ? static_cast<uint64_t>(t.offset) : off;
    offs.push_back(o);
    g.tensorInfo(t.name, t.dims, t.type, o);
    off = (o + t.data.size() + 31) / 32 * 32;
  }
  g.alignTo(32);
  const size_t dataStart = g.bytes.size();
  for (size_t k = 0; k < tensors.size(); ++k) {
    g.mark();
    if (g.bytes.size() < dataStart + offs[k])
      g.bytes.resize(dataStart + offs[k], 0);
    g.bytes.resize(std::max(g.bytes.size(), dataStart + offs[k] + tensors[k].data.size()));
    std::memcpy(g.bytes.data() + dataStart + offs[k], tensors[k].data.data(),
                tensors[k].data.size());
  }
  g.alignTo(32);
  return g;
}

} // namespace tern::testing
