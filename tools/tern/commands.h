// The `tern` commands that live in their own files (cli.cpp dispatches).
// Internal to tools/tern (library tern_cli).
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace tern::cli {

// `tern chat MODEL`: user turns from `in` (one per line; a "> " prompt on
// `out` only when `inIsTerminal`). chat_cmd.cpp.
int cmdChat(const std::vector<std::string> &args, std::istream &in, bool inIsTerminal,
            std::ostream &out, std::ostream &err);

// `tern bench --sampling`: samples/s of the sampling chain on synthetic
// logits over `vocab` tokens, each rate the best of 3 runs of at least
// `minCpuSeconds`. bench_sampling.cpp.
int benchSampling(int vocab, double minCpuSeconds, bool json, std::ostream &out, std::ostream &err);

} // namespace tern::cli
