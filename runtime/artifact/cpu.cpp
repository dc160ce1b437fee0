// Host CPU feature checks and the ELF check of the code section.
#include <cstring>
#include <elf.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"

namespace tern::artifact {

namespace {

#if defined(__x86_64__) || defined(__i386__)
struct CpuidRegs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

CpuidRegs cpuid(uint32_t leaf, uint32_t sub) {
  CpuidRegs r;
  uint32_t maxLeaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
  if (maxLeaf < leaf)
    return r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

uint64_t xcr0() {
  CpuidRegs l1 = cpuid(1, 0);
  if (!(l1.c & (1u << 27))) // OSXSAVE
    return 0;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

enum class Reg : uint8_t { A, B, C, D };
enum class Os : uint8_t { None, Ymm, Zmm, Amx };
struct X86Feature {
  const char *name;
  uint32_t leaf, sub;
  Reg reg;
  uint8_t bit;
  Os os;
};

// LLVM feature names (what `-mattr` / target features spell).
constexpr X86Feature kX86[] = {
    {"cmov", 1, 0, Reg::D, 15, Os::None},
    {"mmx", 1, 0, Reg::D, 23, Os::None},
    {"fxsr", 1, 0, Reg::D, 24, Os::None},
    {"sse", 1, 0, Reg::D, 25, Os::None},
    {"sse2", 1, 0, Reg::D, 26, Os::None},
    {"cx8", 1, 0, Reg::D, 8, Os::None},
    {"sse3", 1, 0, Reg::C, 0, Os::None},
    {"pclmul", 1, 0, Reg::C, 1, Os::None},
    {"ssse3", 1, 0, Reg::C, 9, Os::None},
    {"fma", 1, 0, Reg::C, 12, Os::Ymm},
    {"cx16", 1, 0, Reg::C, 13, Os::None},
    {"sse4.1", 1, 0, Reg::C, 19, Os::None},
    {"sse4.2", 1, 0, Reg::C, 20, Os::None},
    {"crc32", 1, 0, Reg::C, 20, Os::None},
    {"movbe", 1, 0, Reg::C, 22, Os::None},
    {"popcnt", 1, 0, Reg::C, 23, Os::None},
    {"aes", 1, 0, Reg::C, 25, Os::None},
    {"xsave", 1, 0, Reg::C, 26, Os::None},
    {"avx", 1, 0, Reg::C, 28, Os::Ymm},
    {"f16c", 1, 0, Reg::C, 29, Os::Ymm},
    {"rdrnd", 1, 0, Reg::C, 30, Os::None},
    {"fsgsbase", 7, 0, Reg::B, 0, Os::None},
    {"bmi", 7, 0, Reg::B, 3, Os::None},
    {"avx2", 7, 0, Reg::B, 5, Os::Ymm},
    {"bmi2", 7, 0, Reg::B, 8, Os::None},
    {"invpcid", 7, 0, Reg::B, 10, Os::None},
    {"avx512f", 7, 0, Reg::B, 16, Os::Zmm},
    {"evex512", 7, 0, Reg::B, 16, Os::Zmm},
    {"avx512dq", 7, 0, Reg::B, 17, Os::Zmm},
    {"rdseed", 7, 0, Reg::B, 18, Os::None},
    {"adx", 7, 0, Reg::B, 19, Os::None},
    {"avx512ifma", 7, 0, Reg::B, 21, Os::Zmm},
    {"clflushopt", 7, 0, Reg::B, 23, Os::None},
    {"clwb", 7, 0, Reg::B, 24, Os::None},
    {"avx512cd", 7, 0, Reg::B, 28, Os::Zmm},
    {"sha", 7, 0, Reg::B, 29, Os::None},
    {"avx512bw", 7, 0, Reg::B, 30, Os::Zmm},
    {"avx512vl", 7, 0, Reg::B, 31, Os::Zmm},
    {"avx512vbmi", 7, 0, Reg::C, 1, Os::Zmm},
    {"pku", 7, 0, Reg::C, 3, Os::None},
    {"avx512vbmi2", 7, 0, Reg::C, 6, Os::Zmm},
    {"gfni", 7, 0, Reg::C, 8, Os::None},
    {"vaes", 7, 0, Reg::C, 9, Os::Ymm},
    {"vpclmulqdq", 7, 0, Reg::C, 10, Os::Ymm},
    {"avx512vnni", 7, 0, Reg::C, 11, Os::Zmm},
    {"avx512bitalg", 7, 0, Reg::C, 12, Os::Zmm},
    {"avx512vpopcntdq", 7, 0, Reg::C, 14, Os::Zmm},
    {"rdpid", 7, 0, Reg::C, 22, Os::None},
    {"movdiri", 7, 0, Reg::C, 27, Os::None},
    {"movdir64b", 7, 0, Reg::C, 28, Os::None},
    {"avx512vp2intersect", 7, 0, Reg::D, 8, Os::Zmm},
    {"serialize", 7, 0, Reg::D, 14, Os::None},
    {"amx-bf16", 7, 0, Reg::D, 22, Os::Amx},
    {"avx512fp16", 7, 0, Reg::D, 23, Os::Zmm},
    {"amx-tile", 7, 0, Reg::D, 24, Os::Amx},
    {"amx-int8", 7, 0, Reg::D, 25, Os::Amx},
    {"avxvnni", 7, 1, Reg::A, 4, Os::Ymm},
    {"avx512bf16", 7, 1, Reg::A, 5, Os::Zmm},
    {"xsaveopt", 0xd, 1, Reg::A, 0, Os::None},
    {"xsavec", 0xd, 1, Reg::A, 1, Os::None},
    {"xsaves", 0xd, 1, Reg::A, 3, Os::None},
    {"sahf", 0x80000001u, 0, Reg::C, 0, Os::None},
    {"lzcnt", 0x80000001u, 0, Reg::C, 5, Os::None},
    {"sse4a", 0x80000001u, 0, Reg::C, 6, Os::None},
    {"prfchw", 0x80000001u, 0, Reg::C, 8, Os::None},
    {"xop", 0x80000001u, 0, Reg::C, 11, Os::Ymm},
    {"fma4", 0x80000001u, 0, Reg::C, 16, Os::Ymm},
};
#endif

} // namespace

absl::StatusOr<bool> hostHasCpuFeature(std::string_view name) {
#if defined(__x86_64__) || defined(__i386__)
  if (name == "64bit" || name == "x87" || name == "nopl")
    return true;
  for (const X86Feature &f : kX86) {
    if (name != f.name)
      continue;
    CpuidRegs r = cpuid(f.leaf, f.sub);
    uint32_t v = f.reg == Reg::A ? r.a : f.reg == Reg::B ? r.b : f.reg == Reg::C ? r.c : r.d;
    if (!((v >> f.bit) & 1u))
      return false;
    const uint64_t x = (f.os == Os::None) ? 0 : xcr0();
    switch (f.os) {
    case Os::None:
      return true;
    case Os::Ymm:
      return (x & 0x6) == 0x6;
    case Os::Zmm:
      return (x & 0xe6) == 0xe6;
    case Os::Amx:
      return (x & 0x60000) == 0x60000;
    }
  }
  return absl::InvalidArgumentError(
      fmt::format("CPU feature '{}' is not one this runtime knows how to check on x86", name));
#elif defined(__aarch64__)
  const unsigned long hw = getauxval(AT_HWCAP);
#ifdef AT_HWCAP2
  const unsigned long hw2 = getauxval(AT_HWCAP2);
#else
  const unsigned long hw2 = 0;
#endif
  (void)hw2;
  if (name == "neon" || name == "asimd")
    return (hw & HWCAP_ASIMD) != 0;
  if (name == "fp-armv8" || name == "fp")
    return (hw & HWCAP_FP) != 0;
  if (name == "dotprod" || name == "asimddp")
    return (hw & HWCAP_ASIMDDP) != 0;
  if (name == "fullfp16" || name == "asimdhp")
    return (hw & HWCAP_ASIMDHP) != 0;
  if (name == "crc")
    return (hw & HWCAP_CRC32) != 0;
  if (name == "aes")
    return (hw & HWCAP_AES) != 0;
  if (name == "sha2")
    return (hw & HWCAP_SHA2) != 0;
  if (name == "lse")
    return (hw & HWCAP_ATOMICS) != 0;
  if (name == "sve")
    return (hw & HWCAP_SVE) != 0;
#ifdef HWCAP2_I8MM
  if (name == "i8mm")
    return (hw2 & HWCAP2_I8MM) != 0;
#endif
#ifdef HWCAP2_BF16
  if (name == "bf16")
    return (hw2 & HWCAP2_BF16) != 0;
#endif
  if (name == "v8a" || name == "v8.0a")
    return true;
  return absl::InvalidArgumentError(
      fmt::format("CPU feature '{}' is not one this runtime knows how to check on aarch64", name));
#else
  return absl::InvalidArgumentError(
      fmt::format("CPU feature '{}': this runtime cannot check CPU features here", name));
#endif
}

absl::Status checkCpuFeatures(std::string_view features) {
  size_t i = 0;
  while (i <= features.size()) {
    size_t j = features.find(',', i);
    if (j == std::string_view::npos)
      j = features.size();
    std::string_view item = features.substr(i, j - i);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    i = j + 1;
    if (item.empty() || item.front() == '-')
      continue;
    if (item.front() == '+')
      item.remove_prefix(1);
    absl::StatusOr<bool> has = hostHasCpuFeature(item);
    if (!has.ok())
      return absl::FailedPreconditionError(
          fmt::format("required CPU feature '+{}' (header field cpu_features): {}", item,
                      std::string(has.status().message())));
    if (!*has)
      return absl::FailedPreconditionError(fmt::format(
          "this CPU lacks the required feature '+{}' (header field cpu_features = \"{}\"); "
          "recompile for this machine (ternc compile --target native)",
          item, features));
  }
  return absl::OkStatus();
}

uint16_t hostElfMachine() {
#if defined(__x86_64__)
  return EM_X86_64;
#elif defined(__aarch64__)
  return EM_AARCH64;
#elif defined(__i386__)
  return EM_386;
#else
  return EM_NONE;
#endif
}

namespace {
const char *machineName(uint16_t m) {
  switch (m) {
  case EM_X86_64:
    return "x86_64";
  case EM_AARCH64:
    return "aarch64";
  case EM_386:
    return "i386";
  case EM_RISCV:
    return "riscv";
  case EM_ARM:
    return "arm";
  default:
    return "other";
  }
}
} // namespace

absl::Status checkElfSharedObject(std::span<const uint8_t> code, uint16_t machine, uint64_t off) {
  if (code.size() < sizeof(Elf64_Ehdr))
    return absl::InvalidArgumentError(fmt::format(
        "code section at byte {}: {} bytes is too small for an ELF header", off, code.size()));
  Elf64_Ehdr e;
  std::memcpy(&e, code.data(), sizeof e);
  if (std::memcmp(e.e_ident, ELFMAG, SELFMAG) != 0)
    return absl::InvalidArgumentError(
        fmt::format("code section at byte {}: not an ELF file (bad e_ident magic)", off));
  if (e.e_ident[EI_CLASS] != ELFCLASS64)
    return absl::InvalidArgumentError(
        fmt::format("code section at byte {}: e_ident[EI_CLASS] = {}, expected ELFCLASS64",
                    off + EI_CLASS, e.e_ident[EI_CLASS]));
  if (e.e_ident[EI_DATA] != ELFDATA2LSB)
    return absl::InvalidArgumentError(
        fmt::format("code section at byte {}: e_ident[EI_DATA] = {}, expected little-endian",
                    off + EI_DATA, e.e_ident[EI_DATA]));
  if (e.e_type != ET_DYN)
    return absl::InvalidArgumentError(
        fmt::format("code section at byte {}: e_type = {}, expected ET_DYN (a shared object)",
                    off + offsetof(Elf64_Ehdr, e_type), e.e_type));
  if (e.e_machine != machine)
    return absl::FailedPreconditionError(
        fmt::format("code section at byte {}: e_machine = {} ({}), this machine runs {} ({})",
                    off + offsetof(Elf64_Ehdr, e_machine), e.e_machine, machineName(e.e_machine),
                    machine, machineName(machine)));
  if (e.e_shoff > code.size() || e.e_phoff > code.size())
    return absl::InvalidArgumentError(fmt::format(
        "code section at byte {}: ELF program/section header offsets point past its {} bytes", off,
        code.size()));
  return absl::OkStatus();
}

} // namespace tern::artifact
