// Helpers of the end-to-end tests: run a tool as a subprocess, compile a
// GGUF with ternc into the build tree, generate a model with tern-synth.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "gtest/gtest.h"

namespace tern::exec::e2e {

// Runs argv, stdout and stderr to `log`; returns the exit status.
inline int runTool(const std::vector<std::string> &argv, const std::string &log) {
  std::vector<char *> a;
  for (const std::string &s : argv)
    a.push_back(const_cast<char *>(s.c_str()));
  a.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    execv(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// The last n characters of a file.
inline std::string tail(const std::string &path, size_t n = 3000) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

// Compiles `gguf` with ternc into TERN_E2E_DIR/<name>.tern; fails the test
// (with ternc's output) and returns "" if it cannot.
inline std::string compile(const std::string &gguf, const std::string &name,
                           const std::vector<std::string> &flags) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(TERN_E2E_DIR);
  fs::create_directories(dir);
  const std::string out = (dir / (name + ".tern")).string();
  const std::string log = (dir / (name + ".log")).string();
  std::vector<std::string> argv = {TERNC_PATH, "compile", gguf, "-o", out, "--target", "native"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::string cmd;
  for (const std::string &s : argv)
    cmd += s + " ";
  fs::remove(out);
  const int rc = runTool(argv, log);
  EXPECT_EQ(rc, 0) << "ternc could not compile " << gguf
                   << " to a .tern artifact.\n  command: " << cmd << "\n  output (" << log << "):\n"
                   << tail(log);
  if (rc != 0 || !fs::exists(out)) {
    ADD_FAILURE() << "no artifact at " << out;
    return "";
  }
  return out;
}

// tern-synth with `flags` into TERN_E2E_DIR/<name>.gguf; "" on failure.
inline std::string synth(const std::string &name, const std::vector<std::string> &flags) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(TERN_E2E_DIR);
  fs::create_directories(dir);
  const std::string gguf = (dir / (name + ".gguf")).string();
  const std::string log = (dir / (name + ".synth.log")).string();
  std::vector<std::string> argv = {TERN_SYNTH_PATH};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"-o", gguf});
  const int rc = runTool(argv, log);
  EXPECT_EQ(rc, 0) << tail(log);
  return rc == 0 ? gguf : "";
}

} // namespace tern::exec::e2e
