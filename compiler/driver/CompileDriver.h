// `ternc compile`: GGUF -> tern IR -> passes -> output.
#pragma once

namespace tern::compiler {

// argv[0] is "compile"; the rest are the subcommand's arguments. Returns the
// process exit status (0 ok, 1 compile error, 2 usage error).
int runCompileCommand(int argc, char **argv);

} // namespace tern::compiler
