// libFuzzer target: the GGUF reader, the quant-mapping verifier and the
// inspect report must turn any byte string into a value or an error, never a
// crash, leak or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <span>

#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"
#include "tools/ternc/inspect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tern::gguf::Limits limits;
  limits.maxStringBytes = 1 << 20; // keep single allocations small under the fuzzer
  limits.maxArrayElems = 1 << 20;
  auto f = tern::gguf::File::fromBuffer(std::span<const uint8_t>(data, size), limits);
  if (!f.ok())
    return 0;
  auto mapping = tern::formats::verifyMapping(**f);
  auto report = tern::inspect::report(**f, mapping);
  (void)report.dump();
  return 0;
}
