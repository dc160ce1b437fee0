// `ternc tune`: times the ukernels the cost model may choose, on this host,
// for a model's matrix shapes, and writes a tuning file
// (compiler/target/Tuning.h) for `ternc compile --tuning`.
#pragma once

namespace tern::tune {

// argv[0] is "tune". Returns the exit status (0 ok, 1 error, 2 usage).
int runTuneCommand(int argc, char **argv);

} // namespace tern::tune
