// A test double of the CUDA driver (tests only; never installed, never packed
// for a GPU machine): built as build/tests/cuda/fake-driver/libcuda.so.1, so
// a test that puts that directory first on LD_LIBRARY_PATH runs the runtime's
// CUDA driver device (runtime/cuda/device_cuda.cpp, driver.cpp) through it.
//
// It implements exactly the driver entry points the runtime resolves (plus
// cuGetErrorName/String and cuFuncSetAttribute), with the ABI versions it
// resolves (the _v2 names), over host memory, and runs cuLaunchKernel's
// kernel with the runtime's own host emulation (device.cpp's kernel table:
// emulateKernel, the code the emulated device runs) over the launch's grid
// and block, its one parameter (the kernel's parameter struct) read from
// kernelParams[0].
//
// It is an honest double: every call checks what a real driver checks, and a
// failure prints "fake libcuda: <call>: <why>" on stderr and returns the
// CUresult a real driver returns:
//  - cuInit first (CUDA_ERROR_NOT_INITIALIZED), a current context on the
//    calling thread (per thread, as CUDA's) for memory, modules and launches
//    (CUDA_ERROR_INVALID_CONTEXT), the primary context's reference count
//    (its last release frees its memory and modules);
//  - device memory: mmap'd, PROT_NONE outside the driver's own calls (so host
//    code that dereferences a device pointer faults at once), filled with
//    0xA5 by cuMemAlloc (real device memory is not zeroed); every copy and
//    memset must lie inside one live allocation, DtoD ranges must not
//    overlap, cuMemFree takes only a live allocation's base, the host side of
//    a copy must not be device memory (CUDA_ERROR_INVALID_VALUE);
//  - modules: the image must be PTX text (comments, then `.version`, with a
//    `.target` not above the GPU's architecture and an ISA the driver knows)
//    or an NVIDIA ELF cubin (EM_CUDA) for the GPU's major architecture with a
//    minor not above it; anything else is CUDA_ERROR_INVALID_IMAGE. The
//    kernels (their parameter sizes, .maxntid) are read from the image
//    (`.entry` definitions, the cubin's symbols and .nv.info attributes);
//    cuModuleGetFunction finds only those (CUDA_ERROR_NOT_FOUND);
//  - cuLaunchKernel: a function of a loaded module, grid <= (2^31-1, 65535,
//    65535), block <= (1024, 1024, 64) and <= 1024 threads, <= .maxntid
//    (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES), static (the PTX body's .shared,
//    a cubin's .nv.shared.<k>) plus dynamic shared memory <= 48 KiB unless the dynamic part is
//    raised by cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES), the default stream only,
//    kernelParams given; the image's parameter size must equal the kernel table's struct size (a
//    real driver would copy the image's size silently: the double says kernels.cu and kernels.h
//    disagree).
// Limits of the double (it fails loudly rather than pretend): 3-D grids and
// 2-D blocks, `extra` launch parameters, streams (CUDA_ERROR_NOT_SUPPORTED).
//
// Simulated faults, read from the environment at cuInit:
//  TERN_FAKE_CUDA_NO_DEVICE=1     cuInit fails with CUDA_ERROR_NO_DEVICE
//  TERN_FAKE_CUDA_SM=90           the GPU's architecture (default 90)
//  TERN_FAKE_CUDA_MEM_MIB=N       device memory in MiB, fractions allowed
//                                 (default 143771, an H200's);
//                                 cuMemAlloc beyond it: CUDA_ERROR_OUT_OF_MEMORY
//  TERN_FAKE_CUDA_MISSING=a,b     kernels cuModuleGetFunction does not find
//  TERN_FAKE_CUDA_FAULT=name[:N]  launch N (from 0) of kernel `name` faults:
//                                 the next calls of the context fail with
//                                 CUDA_ERROR_ILLEGAL_ADDRESS (sticky, as a
//                                 GPU's) until its last release
//  TERN_FAKE_CUDA_LOG=path        appends one line per call ("cuLaunchKernel
//                                 tern_gpu_add_f32 grid=(..) block=..")
#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <elf.h>
#include <sys/mman.h>

#include "runtime/cuda/device.h"

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;

enum : CUresult {
  kSuccess = 0,
  kInvalidValue = 1,
  kOutOfMemory = 2,
  kNotInitialized = 3,
  kNoDevice = 100,
  kInvalidDevice = 101,
  kInvalidImage = 200,
  kInvalidContext = 201,
  kNoBinaryForGpu = 209,
  kInvalidPtx = 218,
  kUnsupportedPtxVersion = 222,
  kInvalidHandle = 400,
  kNotFound = 500,
  kIllegalAddress = 700,
  kLaunchOutOfResources = 701,
  kNotSupported = 801,
};

const char *errorName(CUresult rc) {
  switch (rc) {
  case kSuccess:
    return "CUDA_SUCCESS";
  case kInvalidValue:
    return "CUDA_ERROR_INVALID_VALUE";
  case kOutOfMemory:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case kNotInitialized:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case kNoDevice:
    return "CUDA_ERROR_NO_DEVICE";
  case kInvalidDevice:
    return "CUDA_ERROR_INVALID_DEVICE";
  case kInvalidImage:
    return "CUDA_ERROR_INVALID_IMAGE";
  case kInvalidContext:
    return "CUDA_ERROR_INVALID_CONTEXT";
  case kNoBinaryForGpu:
    return "CUDA_ERROR_NO_BINARY_FOR_GPU";
  case kInvalidPtx:
    return "CUDA_ERROR_INVALID_PTX";
  case kUnsupportedPtxVersion:
    return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
  case kInvalidHandle:
    return "CUDA_ERROR_INVALID_HANDLE";
  case kNotFound:
    return "CUDA_ERROR_NOT_FOUND";
  case kIllegalAddress:
    return "CUDA_ERROR_ILLEGAL_ADDRESS";
  case kLaunchOutOfResources:
    return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
  case kNotSupported:
    return "CUDA_ERROR_NOT_SUPPORTED";
  default:
    return nullptr;
  }
}

// Prints why a call fails and returns its code.
__attribute__((format(printf, 3, 4))) CUresult fail(CUresult rc, const char *call, const char *fmt,
                                                    ...) {
  char why[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "fake libcuda: %s: %s -> %s\n", call, why, errorName(rc));
  return rc;
}

struct Function {
  std::string name;
  int32_t kernel = -1;       // tern_gpu_kernel id, -1: not in the runtime's table
  int params = -1;           // parameters the image declares (-1: unknown)
  int64_t paramBytes = -1;   // their total size (-1: unknown)
  int maxThreads = 0;        // .maxntid product (0: none)
  uint64_t staticShared = 0; // .shared in the PTX body / the cubin's .nv.shared.<name>
  int maxDynamicShared = 48 << 10;
  struct Module *module = nullptr;
};

struct Module {
  std::string kind; // "PTX sm_90" | "cubin sm_90"
  std::map<std::string, std::unique_ptr<Function>> functions;
};

struct Allocation {
  uint64_t bytes = 0;  // as asked
  uint64_t mapped = 0; // mmap'd (page multiple)
};

struct State {
  std::mutex mu;
  bool initialized = false;
  int sm = 90;
  uint64_t memBytes = 143771ull << 20;
  uint64_t used = 0;
  std::set<std::string> missing;
  std::string logPath;
  // TERN_FAKE_CUDA_FAULT: the kernel whose launch number faultAt (from 0)
  // faults; the context's sticky error after it.
  std::string faultKernel;
  long faultAt = 0, faultSeen = 0;
  CUresult sticky = kSuccess;
  int primaryRefs = 0;
  std::map<uintptr_t, Allocation> allocs; // by base
  std::map<Module *, std::unique_ptr<Module>> modules;
};

State &state() {
  static State *s = new State(); // never destroyed: callable from atexit paths
  return *s;
}

// The primary context's handle (its address only).
char gPrimary;
thread_local void *tCurrent = nullptr;

void logCall(State &s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void logCall(State &s, const char *fmt, ...) {
  if (s.logPath.empty())
    return;
  FILE *f = std::fopen(s.logPath.c_str(), "a");
  if (!f)
    return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(f, fmt, ap);
  va_end(ap);
  std::fputc('\n', f);
  std::fclose(f);
}

CUresult needContext(State &s, const char *call) {
  if (!s.initialized)
    return fail(kNotInitialized, call, "cuInit was not called");
  if (tCurrent != &gPrimary || s.primaryRefs < 1)
    return fail(kInvalidContext, call,
                "no current context on this thread (cuCtxSetCurrent with a retained primary "
                "context first)");
  if (s.sticky != kSuccess)
    return fail(s.sticky, call, "the context has a sticky error from an earlier kernel fault");
  return kSuccess;
}

// The live allocation holding [p, p + bytes), or null.
Allocation *find(State &s, uintptr_t p, uint64_t bytes, uintptr_t *base) {
  auto it = s.allocs.upper_bound(p);
  if (it == s.allocs.begin())
    return nullptr;
  --it;
  if (p - it->first > it->second.bytes || bytes > it->second.bytes - (p - it->first))
    return nullptr;
  *base = it->first;
  return &it->second;
}

void protect(uintptr_t base, const Allocation &a, bool open) {
  ::mprotect(reinterpret_cast<void *>(base), a.mapped, open ? PROT_READ | PROT_WRITE : PROT_NONE);
}

// Device memory readable and writable for the scope (the driver's own
// accesses, a kernel's run), PROT_NONE again after.
struct Opened {
  State &s;
  std::vector<std::pair<uintptr_t, Allocation>> open;
  explicit Opened(State &st) : s(st) {}
  void add(uintptr_t base) {
    const Allocation &a = s.allocs.at(base);
    protect(base, a, true);
    open.emplace_back(base, a);
  }
  void all() {
    for (auto &[b, a] : s.allocs) {
      protect(b, a, true);
      open.emplace_back(b, a);
    }
  }
  ~Opened() {
    for (auto &[b, a] : open)
      protect(b, a, false);
  }
};

CUresult checkRange(State &s, const char *call, const char *what, CUdeviceptr p, size_t bytes,
                    uintptr_t *base) {
  if (!find(s, uintptr_t(p), bytes, base))
    return fail(kInvalidValue, call,
                "%s [0x%llx, +%zu) is not inside one live cuMemAlloc allocation", what, p, bytes);
  return kSuccess;
}

CUresult checkHost(State &s, const char *call, const void *host, size_t bytes) {
  uintptr_t base = 0;
  if (!host && bytes)
    return fail(kInvalidValue, call, "null host pointer");
  if (bytes && find(s, reinterpret_cast<uintptr_t>(host), 1, &base))
    return fail(kInvalidValue, call, "the host pointer %p is device memory", host);
  return kSuccess;
}

void freeAllocation(State &s, std::map<uintptr_t, Allocation>::iterator it) {
  ::munmap(reinterpret_cast<void *>(it->first), it->second.mapped);
  s.used -= it->second.bytes;
  s.allocs.erase(it);
}

// ---- Images ----------------------------------------------------------------

std::string_view skipSpaceAndComments(std::string_view t) {
  for (;;) {
    size_t i = 0;
    while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i])))
      ++i;
    t.remove_prefix(i);
    if (t.substr(0, 2) == "//") {
      const size_t nl = t.find('\n');
      t.remove_prefix(nl == std::string_view::npos ? t.size() : nl);
    } else if (t.substr(0, 2) == "/*") {
      const size_t end = t.find("*/");
      t.remove_prefix(end == std::string_view::npos ? t.size() : end + 2);
    } else {
      return t;
    }
  }
}

std::string_view identifierAt(std::string_view t) {
  size_t i = 0;
  while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_' ||
                          t[i] == '$' || t[i] == '.'))
    ++i;
  return t.substr(0, i);
}

// PTX: `.version M.m`, `.target sm_XY`, and every `.entry NAME(params)
// [.maxntid x, y, z] {` definition.
CUresult loadPtx(State &s, std::string_view text, Module &m) {
  const char *call = "cuModuleLoadData";
  std::string_view t = skipSpaceAndComments(text);
  if (t.substr(0, 8) != ".version")
    return fail(kInvalidPtx, call, "PTX text must begin with .version (after comments)");
  int vmaj = 0, vmin = 0;
  if (std::sscanf(std::string(t.substr(0, 32)).c_str(), ".version %d.%d", &vmaj, &vmin) != 2)
    return fail(kInvalidPtx, call, "unreadable .version");
  // The ISA of a CUDA 12.8 driver's JIT.
  if (vmaj > 8 || (vmaj == 8 && vmin > 7))
    return fail(kUnsupportedPtxVersion, call, "PTX ISA %d.%d is newer than this driver's 8.7", vmaj,
                vmin);
  const size_t tp = t.find(".target");
  int target = 0;
  if (tp == std::string_view::npos ||
      std::sscanf(std::string(t.substr(tp, 32)).c_str(), ".target sm_%d", &target) != 1)
    return fail(kInvalidPtx, call, "no `.target sm_XY` directive");
  if (target > s.sm)
    return fail(kInvalidPtx, call, "PTX .target sm_%d is above this GPU's sm_%d", target, s.sm);
  m.kind = "PTX sm_" + std::to_string(target);
  for (size_t at = t.find(".entry"); at != std::string_view::npos; at = t.find(".entry", at + 6)) {
    std::string_view rest = skipSpaceAndComments(t.substr(at + 6));
    const std::string_view name = identifierAt(rest);
    rest = skipSpaceAndComments(rest.substr(name.size()));
    if (name.empty() || rest.empty() || rest[0] != '(')
      return fail(kInvalidPtx, call, "malformed .entry");
    const size_t close = rest.find(')');
    if (close == std::string_view::npos)
      return fail(kInvalidPtx, call, "unterminated parameter list of .entry %.*s", int(name.size()),
                  name.data());
    const std::string_view params = rest.substr(1, close - 1);
    std::string_view after = skipSpaceAndComments(rest.substr(close + 1));
    const size_t brace = after.find('{'), semi = after.find(';');
    if (semi < brace)
      continue; // a declaration
    auto f = std::make_unique<Function>();
    f->name = std::string(name);
    f->params = 0;
    f->paramBytes = 0;
    for (size_t p = params.find(".param"); p != std::string_view::npos;
         p = params.find(".param", p + 6)) {
      ++f->params;
      const size_t end = params.find(',', p);
      const std::string decl(params.substr(p, end == std::string_view::npos ? end : end - p));
      int64_t bytes = 0;
      if (const size_t lb = decl.find('['); lb != std::string::npos)
        bytes = std::atoll(decl.c_str() + lb + 1); // .b8 name[N]
      else if (decl.find("64") != std::string::npos)
        bytes = 8;
      else if (decl.find("32") != std::string::npos)
        bytes = 4;
      else
        bytes = -1;
      f->paramBytes = bytes < 0 || f->paramBytes < 0 ? -1 : f->paramBytes + bytes;
    }
    const std::string_view head = after.substr(0, brace);
    if (const size_t mx = head.find(".maxntid"); mx != std::string_view::npos) {
      int x = 1, y = 1, z = 1;
      std::sscanf(std::string(head.substr(mx)).c_str(), ".maxntid %d, %d, %d", &x, &y, &z);
      f->maxThreads = x * y * z;
    }
    // Static shared memory: the `.shared ... [N]` declarations of the body
    // (clang demotes a kernel's __shared__ variables into it), up to the
    // next function.
    std::string_view body = after.substr(brace + 1);
    body = body.substr(0, std::min(body.find(".entry"), body.find(".func")));
    for (size_t l = 0; l < body.size();) {
      size_t e = body.find('\n', l);
      if (e == std::string_view::npos)
        e = body.size();
      std::string_view line = skipSpaceAndComments(body.substr(l, e - l));
      if (line.substr(0, 7) == ".shared")
        if (const size_t lb = line.find('['); lb != std::string_view::npos)
          f->staticShared += uint64_t(std::atoll(std::string(line.substr(lb + 1)).c_str()));
      l = e + 1;
    }
    f->kernel = tern::cuda::kernelId(f->name.c_str());
    f->module = &m;
    m.functions[f->name] = std::move(f);
  }
  return kSuccess;
}

// A cubin: ELF64, EM_CUDA, the architecture in e_flags bits 8-15; its kernels
// the global FUNC symbols with a .nv.info.<name> section (parameter size:
// EIATTR_CBANK_PARAM_SIZE, count: EIATTR_KPARAM_INFO records, threads:
// EIATTR_MAX_THREADS).
CUresult loadCubin(State &s, const uint8_t *img, Module &m) {
  const char *call = "cuModuleLoadData";
  Elf64_Ehdr eh;
  std::memcpy(&eh, img, sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return fail(kInvalidImage, call, "an ELF image that is not 64-bit little-endian");
  constexpr int kEmCuda = 190;
  if (eh.e_machine != kEmCuda)
    return fail(kInvalidImage, call, "an ELF image for machine %d, not EM_CUDA (190)",
                eh.e_machine);
  const int sm = int((eh.e_flags >> 8) & 0xff);
  if (sm / 10 != s.sm / 10 || sm > s.sm)
    return fail(kNoBinaryForGpu, call, "a cubin for sm_%d on this sm_%d GPU", sm, s.sm);
  m.kind = "cubin sm_" + std::to_string(sm);
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum)
    return fail(kInvalidImage, call, "a cubin without readable section headers");
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), img + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
  auto secName = [&](const Elf64_Shdr &h) {
    return reinterpret_cast<const char *>(img + sh[eh.e_shstrndx].sh_offset + h.sh_name);
  };
  std::map<std::string, const Elf64_Shdr *> infos;
  std::map<std::string, uint64_t> shared; // static shared memory per kernel
  for (const Elf64_Shdr &h : sh) {
    if (std::strncmp(secName(h), ".nv.info.", 9) == 0)
      infos[secName(h) + 9] = &h;
    if (std::strncmp(secName(h), ".nv.shared.", 11) == 0)
      shared[secName(h) + 11] = h.sh_size;
  }
  for (const Elf64_Shdr &h : sh) {
    if (h.sh_type != SHT_SYMTAB)
      continue;
    const char *strtab = reinterpret_cast<const char *>(img + sh[h.sh_link].sh_offset);
    for (uint64_t i = 0; i < h.sh_size / sizeof(Elf64_Sym); ++i) {
      Elf64_Sym sym;
      std::memcpy(&sym, img + h.sh_offset + i * sizeof(Elf64_Sym), sizeof sym);
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || ELF64_ST_BIND(sym.st_info) != STB_GLOBAL)
        continue;
      auto f = std::make_unique<Function>();
      f->name = strtab + sym.st_name;
      if (auto it = shared.find(f->name); it != shared.end())
        f->staticShared = it->second;
      if (auto it = infos.find(f->name); it != infos.end()) {
        const uint8_t *b = img + it->second->sh_offset;
        const uint64_t n = it->second->sh_size;
        f->params = 0;
        for (uint64_t o = 0; o + 4 <= n;) {
          const uint8_t format = b[o], attr = b[o + 1];
          uint16_t v = 0;
          std::memcpy(&v, b + o + 2, 2);
          if (format == 0x03) { // EIFMT_HVAL: the value in the header
            if (attr == 0x19)   // EIATTR_CBANK_PARAM_SIZE
              f->paramBytes = v;
            o += 4;
          } else if (format == 0x04) { // EIFMT_SVAL: v bytes follow
            if (attr == 0x17)          // EIATTR_KPARAM_INFO
              ++f->params;
            if (attr == 0x05 && v >= 12) { // EIATTR_MAX_THREADS
              uint32_t xyz[3];
              std::memcpy(xyz, b + o + 4, 12);
              f->maxThreads = int(xyz[0] * xyz[1] * xyz[2]);
            }
            o += 4 + v;
          } else {
            o += 4; // EIFMT_NVAL / BVAL
          }
        }
      }
      f->kernel = tern::cuda::kernelId(f->name.c_str());
      f->module = &m;
      m.functions[f->name] = std::move(f);
    }
  }
  if (m.functions.empty())
    return fail(kInvalidImage, call, "a cubin without kernels");
  return kSuccess;
}

Function *liveFunction(State &s, void *f) {
  for (auto &[_, m] : s.modules)
    for (auto &[__, fn] : m->functions)
      if (fn.get() == f)
        return fn.get();
  return nullptr;
}

} // namespace

// ---- The entry points ------------------------------------------------------

#define TERN_CU extern "C" __attribute__((visibility("default")))

TERN_CU CUresult cuGetErrorName(CUresult rc, const char **name) {
  if (!name)
    return kInvalidValue;
  *name = errorName(rc);
  return *name ? kSuccess : kInvalidValue;
}

TERN_CU CUresult cuGetErrorString(CUresult rc, const char **str) { return cuGetErrorName(rc, str); }

TERN_CU CUresult cuInit(unsigned flags) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (flags != 0)
    return fail(kInvalidValue, "cuInit", "flags must be 0 (got %u)", flags);
  if (const char *e = std::getenv("TERN_FAKE_CUDA_NO_DEVICE"); e && *e && std::strcmp(e, "0"))
    return fail(kNoDevice, "cuInit", "no GPU (TERN_FAKE_CUDA_NO_DEVICE)");
  if (const char *e = std::getenv("TERN_FAKE_CUDA_SM"); e && *e)
    s.sm = std::atoi(e);
  if (const char *e = std::getenv("TERN_FAKE_CUDA_MEM_MIB"); e && *e)
    s.memBytes = uint64_t(std::strtod(e, nullptr) * double(1 << 20));
  s.missing.clear();
  if (const char *e = std::getenv("TERN_FAKE_CUDA_MISSING"); e && *e) {
    std::string all = e;
    for (size_t b = 0; b <= all.size();) {
      size_t c = all.find(',', b);
      if (c == std::string::npos)
        c = all.size();
      if (c > b)
        s.missing.insert(all.substr(b, c - b));
      b = c + 1;
    }
  }
  if (const char *e = std::getenv("TERN_FAKE_CUDA_LOG"); e)
    s.logPath = e;
  s.faultKernel.clear();
  s.faultAt = s.faultSeen = 0;
  if (const char *e = std::getenv("TERN_FAKE_CUDA_FAULT"); e && *e) {
    s.faultKernel = e;
    if (const size_t c = s.faultKernel.find(':'); c != std::string::npos) {
      s.faultAt = std::atol(s.faultKernel.c_str() + c + 1);
      s.faultKernel.resize(c);
    }
  }
  s.initialized = true;
  logCall(s, "cuInit sm_%d %llu MiB", s.sm, (unsigned long long)(s.memBytes >> 20));
  return kSuccess;
}

TERN_CU CUresult cuDeviceGetCount(int *count) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDeviceGetCount", "cuInit was not called");
  if (!count)
    return fail(kInvalidValue, "cuDeviceGetCount", "null count");
  *count = 1;
  return kSuccess;
}

TERN_CU CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDeviceGet", "cuInit was not called");
  if (!dev)
    return fail(kInvalidValue, "cuDeviceGet", "null device");
  if (ordinal != 0)
    return fail(kInvalidDevice, "cuDeviceGet", "no device %d (1 device)", ordinal);
  *dev = 0;
  return kSuccess;
}

TERN_CU CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDeviceGetName", "cuInit was not called");
  if (dev != 0)
    return fail(kInvalidDevice, "cuDeviceGetName", "device %d", dev);
  if (!name || len < 1)
    return fail(kInvalidValue, "cuDeviceGetName", "no buffer");
  std::snprintf(name, size_t(len), "tern fake libcuda (tests only, no GPU)");
  return kSuccess;
}

TERN_CU CUresult cuDeviceGetAttribute(int *value, int attr, CUdevice dev) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDeviceGetAttribute", "cuInit was not called");
  if (dev != 0)
    return fail(kInvalidDevice, "cuDeviceGetAttribute", "device %d", dev);
  if (!value)
    return fail(kInvalidValue, "cuDeviceGetAttribute", "null value");
  switch (attr) {
  case 1: // MAX_THREADS_PER_BLOCK
    *value = 1024;
    return kSuccess;
  case 2:
  case 3:
    *value = 1024;
    return kSuccess;
  case 4:
    *value = 64;
    return kSuccess;
  case 5:
    *value = 2147483647;
    return kSuccess;
  case 6:
  case 7:
    *value = 65535;
    return kSuccess;
  case 8: // MAX_SHARED_MEMORY_PER_BLOCK
    *value = 48 << 10;
    return kSuccess;
  case 10: // WARP_SIZE
    *value = 32;
    return kSuccess;
  case 16: // MULTIPROCESSOR_COUNT
    *value = 132;
    return kSuccess;
  case 75:
    *value = s.sm / 10;
    return kSuccess;
  case 76:
    *value = s.sm % 10;
    return kSuccess;
  case 97: // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    *value = 227 << 10;
    return kSuccess;
  default:
    return fail(kInvalidValue, "cuDeviceGetAttribute", "attribute %d is not modelled", attr);
  }
}

TERN_CU CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDeviceTotalMem_v2", "cuInit was not called");
  if (dev != 0)
    return fail(kInvalidDevice, "cuDeviceTotalMem_v2", "device %d", dev);
  if (!bytes)
    return fail(kInvalidValue, "cuDeviceTotalMem_v2", "null bytes");
  *bytes = size_t(s.memBytes);
  return kSuccess;
}

TERN_CU CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice dev) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDevicePrimaryCtxRetain", "cuInit was not called");
  if (dev != 0)
    return fail(kInvalidDevice, "cuDevicePrimaryCtxRetain", "device %d", dev);
  if (!ctx)
    return fail(kInvalidValue, "cuDevicePrimaryCtxRetain", "null context");
  ++s.primaryRefs;
  *ctx = &gPrimary;
  logCall(s, "cuDevicePrimaryCtxRetain refs=%d", s.primaryRefs);
  return kSuccess;
}

TERN_CU CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuDevicePrimaryCtxRelease_v2", "cuInit was not called");
  if (dev != 0)
    return fail(kInvalidDevice, "cuDevicePrimaryCtxRelease_v2", "device %d", dev);
  if (s.primaryRefs < 1)
    return fail(kInvalidContext, "cuDevicePrimaryCtxRelease_v2",
                "the primary context is not retained");
  if (--s.primaryRefs == 0) { // destroyed: its memory and modules with it
    logCall(s, "cuDevicePrimaryCtxRelease_v2 destroys the context: %zu allocations, %zu modules",
            s.allocs.size(), s.modules.size());
    while (!s.allocs.empty())
      freeAllocation(s, s.allocs.begin());
    s.modules.clear();
    s.sticky = kSuccess; // a new context starts clean
  }
  return kSuccess;
}

TERN_CU CUresult cuCtxSetCurrent(void *ctx) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialized)
    return fail(kNotInitialized, "cuCtxSetCurrent", "cuInit was not called");
  if (ctx && (ctx != &gPrimary || s.primaryRefs < 1))
    return fail(kInvalidContext, "cuCtxSetCurrent", "%p is not a live context", ctx);
  tCurrent = ctx;
  return kSuccess;
}

TERN_CU CUresult cuCtxSynchronize() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  // Launches ran when queued: nothing is pending.
  return needContext(s, "cuCtxSynchronize");
}

TERN_CU CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemAlloc_v2"); rc != kSuccess)
    return rc;
  if (!dptr || bytes == 0)
    return fail(kInvalidValue, "cuMemAlloc_v2", "%s", !dptr ? "null pointer" : "0 bytes");
  if (bytes > s.memBytes - s.used)
    return fail(kOutOfMemory, "cuMemAlloc_v2", "%zu bytes asked, %llu of %llu free", bytes,
                (unsigned long long)(s.memBytes - s.used), (unsigned long long)s.memBytes);
  const uint64_t mapped = (uint64_t(bytes) + 4095) / 4096 * 4096;
  void *p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return fail(kOutOfMemory, "cuMemAlloc_v2", "mmap of %zu bytes failed", bytes);
  std::memset(p, 0xA5, bytes); // device memory is not zeroed
  Allocation a{bytes, mapped};
  protect(reinterpret_cast<uintptr_t>(p), a, false);
  s.allocs[reinterpret_cast<uintptr_t>(p)] = a;
  s.used += bytes;
  *dptr = CUdeviceptr(reinterpret_cast<uintptr_t>(p));
  logCall(s, "cuMemAlloc_v2 %zu", bytes);
  return kSuccess;
}

TERN_CU CUresult cuMemFree_v2(CUdeviceptr p) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemFree_v2"); rc != kSuccess)
    return rc;
  if (p == 0)
    return kSuccess;
  auto it = s.allocs.find(uintptr_t(p));
  if (it == s.allocs.end())
    return fail(kInvalidValue, "cuMemFree_v2", "0x%llx is not the base of a live allocation", p);
  freeAllocation(s, it);
  return kSuccess;
}

TERN_CU CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char value, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemsetD8_v2"); rc != kSuccess)
    return rc;
  uintptr_t base = 0;
  if (CUresult rc = checkRange(s, "cuMemsetD8_v2", "destination", p, bytes, &base); rc != kSuccess)
    return rc;
  Opened o(s);
  o.add(base);
  std::memset(reinterpret_cast<void *>(uintptr_t(p)), value, bytes);
  return kSuccess;
}

TERN_CU CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemcpyHtoD_v2"); rc != kSuccess)
    return rc;
  uintptr_t base = 0;
  if (CUresult rc = checkRange(s, "cuMemcpyHtoD_v2", "destination", dst, bytes, &base);
      rc != kSuccess)
    return rc;
  if (CUresult rc = checkHost(s, "cuMemcpyHtoD_v2", src, bytes); rc != kSuccess)
    return rc;
  Opened o(s);
  o.add(base);
  std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
  return kSuccess;
}

TERN_CU CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemcpyDtoH_v2"); rc != kSuccess)
    return rc;
  uintptr_t base = 0;
  if (CUresult rc = checkRange(s, "cuMemcpyDtoH_v2", "source", src, bytes, &base); rc != kSuccess)
    return rc;
  if (CUresult rc = checkHost(s, "cuMemcpyDtoH_v2", dst, bytes); rc != kSuccess)
    return rc;
  Opened o(s);
  o.add(base);
  std::memcpy(dst, reinterpret_cast<const void *>(uintptr_t(src)), bytes);
  return kSuccess;
}

TERN_CU CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuMemcpyDtoD_v2"); rc != kSuccess)
    return rc;
  uintptr_t bd = 0, bs = 0;
  if (CUresult rc = checkRange(s, "cuMemcpyDtoD_v2", "destination", dst, bytes, &bd);
      rc != kSuccess)
    return rc;
  if (CUresult rc = checkRange(s, "cuMemcpyDtoD_v2", "source", src, bytes, &bs); rc != kSuccess)
    return rc;
  if (bytes && dst < src + bytes && src < dst + bytes)
    return fail(kInvalidValue, "cuMemcpyDtoD_v2",
                "overlapping ranges [0x%llx, +%zu), [0x%llx, +%zu)", dst, bytes, src, bytes);
  logCall(s, "cuMemcpyDtoD_v2 %zu", bytes);
  Opened o(s);
  o.add(bd);
  if (bs != bd)
    o.add(bs);
  std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), reinterpret_cast<void *>(uintptr_t(src)),
              bytes);
  return kSuccess;
}

TERN_CU CUresult cuModuleLoadData(void **module, const void *image) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  const char *call = "cuModuleLoadData";
  if (CUresult rc = needContext(s, call); rc != kSuccess)
    return rc;
  if (!module || !image)
    return fail(kInvalidValue, call, "null %s", !module ? "module" : "image");
  const auto *img = static_cast<const uint8_t *>(image);
  auto m = std::make_unique<Module>();
  CUresult rc;
  if (std::memcmp(img, ELFMAG, SELFMAG) == 0) {
    rc = loadCubin(s, img, *m);
  } else {
    const char *text = static_cast<const char *>(image);
    const std::string_view t = skipSpaceAndComments(std::string_view(text, std::strlen(text)));
    if (t.empty() || t[0] != '.')
      return fail(kInvalidImage, call,
                  "neither an ELF cubin nor PTX text (first bytes %02x %02x %02x %02x)", img[0],
                  img[0] ? img[1] : 0, img[0] && img[1] ? img[2] : 0,
                  img[0] && img[1] && img[2] ? img[3] : 0);
    rc = loadPtx(s, text, *m);
  }
  if (rc != kSuccess)
    return rc;
  logCall(s, "cuModuleLoadData %s, %zu kernels", m->kind.c_str(), m->functions.size());
  Module *raw = m.get();
  s.modules[raw] = std::move(m);
  *module = raw;
  return kSuccess;
}

TERN_CU CUresult cuModuleUnload(void *module) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuModuleUnload"); rc != kSuccess)
    return rc;
  if (!s.modules.erase(static_cast<Module *>(module)))
    return fail(kInvalidHandle, "cuModuleUnload", "%p is not a loaded module", module);
  return kSuccess;
}

TERN_CU CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  const char *call = "cuModuleGetFunction";
  if (CUresult rc = needContext(s, call); rc != kSuccess)
    return rc;
  if (!fn || !name)
    return fail(kInvalidValue, call, "null %s", !fn ? "function" : "name");
  auto it = s.modules.find(static_cast<Module *>(module));
  if (it == s.modules.end())
    return fail(kInvalidHandle, call, "%p is not a loaded module", module);
  auto f = it->second->functions.find(name);
  if (f == it->second->functions.end())
    return fail(kNotFound, call, "%s: no such kernel in the module (%s)", name,
                it->second->kind.c_str());
  if (s.missing.count(name)) {
    logCall(s, "cuModuleGetFunction %s: missing (TERN_FAKE_CUDA_MISSING)", name);
    return kNotFound; // simulated: silent, as a real driver's
  }
  *fn = f->second.get();
  return kSuccess;
}

TERN_CU CUresult cuFuncSetAttribute(void *fn, int attr, int value) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (CUresult rc = needContext(s, "cuFuncSetAttribute"); rc != kSuccess)
    return rc;
  Function *f = liveFunction(s, fn);
  if (!f)
    return fail(kInvalidHandle, "cuFuncSetAttribute", "%p is not a live function", fn);
  if (attr != 8) // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    return fail(kNotSupported, "cuFuncSetAttribute", "attribute %d is not modelled", attr);
  if (value < 0 || value > (227 << 10))
    return fail(kInvalidValue, "cuFuncSetAttribute", "%d bytes of shared memory", value);
  f->maxDynamicShared = value;
  return kSuccess;
}

TERN_CU CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, unsigned sharedBytes, void *stream,
                                void **params, void **extra) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  const char *call = "cuLaunchKernel";
  if (CUresult rc = needContext(s, call); rc != kSuccess)
    return rc;
  Function *f = liveFunction(s, fn);
  if (!f)
    return fail(kInvalidHandle, call, "%p is not a function of a loaded module", fn);
  const char *n = f->name.c_str();
  if (!gx || !gy || !gz || !bx || !by || !bz || gx > 2147483647u || gy > 65535 || gz > 65535 ||
      bx > 1024 || by > 1024 || bz > 64 || uint64_t(bx) * by * bz > 1024)
    return fail(kInvalidValue, call, "%s: grid (%u, %u, %u) block (%u, %u, %u) over the limits", n,
                gx, gy, gz, bx, by, bz);
  if (f->maxThreads && uint64_t(bx) * by * bz > uint64_t(f->maxThreads))
    return fail(kLaunchOutOfResources, call, "%s: %u threads per block, .maxntid %d", n,
                bx * by * bz, f->maxThreads);
  // Static + dynamic shared memory: <= 48 KiB, unless the dynamic part was
  // raised with cuFuncSetAttribute (then <= it, and the sum <= 227 KiB).
  if (sharedBytes > unsigned(f->maxDynamicShared) ||
      f->staticShared + sharedBytes >
          std::max<uint64_t>(48 << 10, f->maxDynamicShared > (48 << 10) ? 227 << 10 : 0))
    return fail(kInvalidValue, call,
                "%s: %llu bytes of static and %u of dynamic shared memory, %d dynamic allowed "
                "(over 48 KiB in all needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES))",
                n, (unsigned long long)f->staticShared, sharedBytes, f->maxDynamicShared);
  // The legacy default stream, CU_STREAM_LEGACY (1) or CU_STREAM_PER_THREAD (2).
  if (stream && stream != reinterpret_cast<void *>(1) && stream != reinterpret_cast<void *>(2))
    return fail(kInvalidHandle, call, "%s: stream %p (the double has no created streams)", n,
                stream);
  if (extra)
    return fail(kNotSupported, call, "%s: `extra` launch parameters are not modelled", n);
  if (f->params != 0 && (!params || !params[0]))
    return fail(kInvalidValue, call, "%s: the kernel has parameters and kernelParams is null", n);
  if (f->kernel < 0)
    return fail(kNotSupported, call, "%s: not a kernel of the runtime's table (device.cpp)", n);
  const uint64_t want = tern::cuda::kernelParamBytes(f->kernel);
  if (f->params != 1 || f->paramBytes != int64_t(want))
    return fail(kInvalidValue, call,
                "%s: the image declares %d parameters of %lld bytes, the runtime passes one "
                "struct of %llu bytes (kernels.cu and kernels.h disagree)",
                n, f->params, (long long)f->paramBytes, (unsigned long long)want);
  if (gz != 1 || by != 1 || bz != 1)
    return fail(kNotSupported, call,
                "%s: the double emulates 2-D grids of 1-D blocks only (grid z %u, block y/z %u/%u)",
                n, gz, by, bz);
  tern::cuda::LaunchDims d;
  d.gridX = gx;
  d.gridY = gy;
  d.blockX = bx;
  logCall(s, "cuLaunchKernel %s grid=(%u,%u) block=%u static_shared=%llu", n, gx, gy, bx,
          (unsigned long long)f->staticShared);
  if (f->name == s.faultKernel && s.faultSeen++ == s.faultAt) {
    // An asynchronous fault: the launch is accepted, the error shows at the
    // next call and stays (sticky) until the context is destroyed.
    std::fprintf(stderr,
                 "fake libcuda: %s faults (TERN_FAKE_CUDA_FAULT): the context's sticky "
                 "error is now CUDA_ERROR_ILLEGAL_ADDRESS\n",
                 n);
    s.sticky = kIllegalAddress;
    // With CUDA_LAUNCH_BLOCKING=1 a driver reports it at the faulting launch.
    const char *blocking = std::getenv("CUDA_LAUNCH_BLOCKING");
    return blocking && std::strcmp(blocking, "1") == 0 ? kIllegalAddress : kSuccess;
  }
  // The parameter struct is copied at launch, as the driver copies it.
  std::vector<uint64_t> copy((want + 7) / 8);
  std::memcpy(copy.data(), params[0], want);
  Opened o(s);
  o.all();
  tern::cuda::emulateKernel(f->kernel, d, copy.data());
  return kSuccess;
}
