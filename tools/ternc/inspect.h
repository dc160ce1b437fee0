// `ternc inspect`: what a GGUF file holds and whether ternc accepts it.
#pragma once

#include <iosfwd>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"

namespace tern::inspect {

struct Options {
  bool json = false;
  formats::MappingOptions mapping;
};

// The whole report as JSON (the text form is rendered from it).
nlohmann::json report(const gguf::File &file, const formats::ModelMapping &mapping);
void printText(std::ostream &os, const nlohmann::json &r);

// Entry point of the subcommand: argv[0] == "inspect". Returns the exit code:
// 0 accepted, 1 refused or unreadable (reason on stderr), 2 bad usage.
int runInspectCommand(int argc, char **argv, std::ostream &out, std::ostream &err);

} // namespace tern::inspect
