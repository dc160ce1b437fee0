// tern: run ternary models. The work lives in cli.cpp (library tern_cli).
#include <iostream>

#include "tools/tern/cli.h"

int main(int argc, char **argv) {
  return tern::cli::ternMain(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
