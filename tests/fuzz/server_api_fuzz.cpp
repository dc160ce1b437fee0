// libFuzzer target: `tern serve`'s request parser must turn any body into a
// request or a 4xx ApiError, never a crash, leak, exception or undefined
// behaviour. The first byte picks the endpoint.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const std::string_view body(reinterpret_cast<const char *>(data + 1), size - 1);
  using namespace tern::server;
  switch (data[0] % 4) {
  case 0:
  case 1: {
    const Endpoint ep = data[0] % 4 == 0 ? Endpoint::Chat : Endpoint::Completion;
    ApiResult<GenerationRequest> r = parseGenerationRequest(ep, body);
    if (auto *e = std::get_if<ApiError>(&r)) {
      if (e->status < 400 || e->status >= 500)
        __builtin_trap();
      (void)dumpJson(errorBody(*e));
    }
    break;
  }
  case 2:
    (void)parseTokenizeRequest(body);
    break;
  default:
    (void)parseDetokenizeRequest(body);
  }
  return 0;
}
