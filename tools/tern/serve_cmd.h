// `tern serve` (serve_cmd.cpp), dispatched from cli.cpp's command table.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tern::cli {

int cmdServe(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

} // namespace tern::cli
