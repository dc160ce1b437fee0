// The `tern` command line: `tern eval`, `tern run`, `tern bench`.
// tools/tern/main.cpp only forwards argv here, so tests can drive the CLI
// in-process.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tern::cli {

// Runs `tern <args...>` (args excludes argv[0]); returns the exit code.
// Results go to `out`, diagnostics and timings to `err`.
int ternMain(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

} // namespace tern::cli
