// The `tern` command line: `tern eval`, `tern run`, `tern chat`, `tern bench`.
// tools/tern/main.cpp only forwards argv here, so tests can drive the CLI
// in-process.
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace tern::cli {

// Runs `tern <args...>` (args excludes argv[0]); returns the exit code.
// Results go to `out`, diagnostics and timings to `err`; `tern chat` reads
// its user turns from stdin (a prompt marker only when stdin is a terminal).
int ternMain(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);
// The same with `tern chat`'s input given: `in`, and whether it is a terminal.
int ternMain(const std::vector<std::string> &args, std::istream &in, bool inIsTerminal,
             std::ostream &out, std::ostream &err);

} // namespace tern::cli
