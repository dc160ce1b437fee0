// `tern run MODEL.gguf --compile`: compile a GGUF into the artifact cache with
// the `ternc` executable (a subprocess: the runtime never links the
// compiler) and return the cached .tern path.
//
// Cache folder: $TERN_CACHE_DIR, else $XDG_CACHE_HOME/ternc, else
// ~/.cache/ternc. Key: contentHash (XXH3-64) over the GGUF's contentHash and
// size, the ternc version (`ternc --version`), the ternc executable's
// contentHash and the compile flags; file name
// <gguf stem>-<key as 16 hex digits>.tern. A cached file is reused only when
// it opens and validates; otherwise it is rebuilt.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tern::exec {

struct CompileRequest {
  std::string target = "native";
  std::string kernel;    // "" (ternc's default) or e.g. "ref"
  std::string actQuant;  // "" (token, the default) or "none"
  std::string head;      // "" (f16, the default) or "q8"
  std::string kvType;    // "" (f16, the default) or "f32"
  std::string i2sLayout; // "" or a formats::i2sLayoutName (x86-qk128, arm-qk64, x86-1x4)
  std::vector<std::string> extraArgs;
};

// The ternc executable: $TERNC, else `ternc` next to the running binary,
// else `ternc` on $PATH.
absl::StatusOr<std::string> findTernc();
// The cache folder (created if missing).
absl::StatusOr<std::string> cacheDir();
// Compiles (or reuses) and returns the artifact path. ternc's output and
// progress go to `log` (the caller's stderr).
absl::StatusOr<std::string> compileToCache(const std::string &ggufPath,
                                           const CompileRequest &request, std::ostream &log);

} // namespace tern::exec
