// The PTX files the build wrote, for the tests that read them: one per cuda
// architecture, where tests/cuda/CMakeLists.txt (tern_cuda_test_reads_ptx)
// defines TERN_CUDA_PTX_DIR and TERN_CUDA_ARCHS; none where the PTX is not
// built (TERN_CUDA_PTX off or no clang).
#pragma once

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace tern::cudatest {

// "<dir>/tern-cuda-<arch>.ptx" + suffix for every architecture built.
inline std::vector<std::string> builtPtxFiles(const std::string &suffix = "") {
  std::vector<std::string> files;
#ifdef TERN_CUDA_PTX_DIR
  std::istringstream archs(TERN_CUDA_ARCHS);
  for (std::string arch; archs >> arch;)
    files.push_back(std::string(TERN_CUDA_PTX_DIR) + "/tern-cuda-" + arch + ".ptx" + suffix);
#endif
  (void)suffix;
  return files;
}

// The whole file, or false where it cannot be read.
inline bool readText(const std::string &path, std::string &text) {
  std::ifstream f(path);
  if (!f)
    return false;
  text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

} // namespace tern::cudatest
