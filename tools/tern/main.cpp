// tern: run ternary models. The work lives in runtime/model (tern_cli).
#include <iostream>

#include "runtime/model/cli.h"

int main(int argc, char **argv) {
  return tern::cli::ternMain(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
