#include "runtime/exec/compile_cache.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"
#include "runtime/support/hash.h"
#include "runtime/support/status.h"

namespace tern::exec {

namespace fs = std::filesystem;

absl::StatusOr<std::string> findTernc() {
  if (const char *e = std::getenv("TERNC"); e && *e) {
    if (::access(e, X_OK) != 0)
      return absl::NotFoundError(fmt::format("$TERNC={} is not an executable", e));
    return std::string(e);
  }
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path c = self.parent_path() / "ternc";
    if (::access(c.c_str(), X_OK) == 0)
      return c.string();
  }
  if (const char *path = std::getenv("PATH")) {
    std::string p(path);
    size_t i = 0;
    while (i <= p.size()) {
      size_t j = p.find(':', i);
      if (j == std::string::npos)
        j = p.size();
      fs::path c = fs::path(p.substr(i, j - i)) / "ternc";
      if (j > i && ::access(c.c_str(), X_OK) == 0)
        return c.string();
      i = j + 1;
    }
  }
  return absl::NotFoundError(
      "cannot find the ternc compiler: set $TERNC, put ternc next to tern or on $PATH, or run "
      "the .gguf on the reference path (--reference)");
}

absl::StatusOr<std::string> cacheDir() {
  fs::path dir;
  if (const char *e = std::getenv("TERN_CACHE_DIR"); e && *e)
    dir = e;
  else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = fs::path(x) / "ternc";
  else if (const char *h = std::getenv("HOME"); h && *h)
    dir = fs::path(h) / ".cache" / "ternc";
  else
    return absl::NotFoundError("no cache folder: set $XDG_CACHE_HOME or $HOME");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return absl::PermissionDeniedError(
        fmt::format("cannot create the cache folder {}: {}", dir.string(), ec.message()));
  return dir.string();
}

namespace {

// Runs argv; the child's stdout goes to `captureFd` (or our stderr when -1).
// Returns the exit status.
absl::StatusOr<int> runProcess(const std::vector<std::string> &argv, int captureFd) {
  std::vector<char *> cargv;
  for (const std::string &a : argv)
    cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0)
    return absl::InternalError(fmt::format("fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    ::dup2(captureFd >= 0 ? captureFd : 2, 1);
    ::execv(cargv[0], cargv.data());
    const char *msg = "tern: cannot execute ternc\n";
    (void)!::write(2, msg, std::strlen(msg));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return absl::InternalError(fmt::format("waitpid failed: {}", std::strerror(errno)));
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

absl::StatusOr<std::string> terncVersion(const std::string &ternc) {
  char tmpl[] = "/tmp/tern-ver-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0)
    return absl::InternalError("mkstemp failed");
  ::unlink(tmpl);
  absl::StatusOr<int> rc = runProcess({ternc, "--version"}, fd);
  std::string out;
  ::lseek(fd, 0, SEEK_SET);
  char buf[256];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    out.append(buf, size_t(n));
  ::close(fd);
  if (!rc.ok())
    return rc.status();
  if (*rc != 0)
    return absl::FailedPreconditionError(
        fmt::format("{} --version exited with status {}", ternc, *rc));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

} // namespace

absl::StatusOr<std::string> compileToCache(const std::string &ggufPath, const CompileRequest &req,
                                           std::ostream &log) {
  absl::StatusOr<std::string> ternc = findTernc();
  if (!ternc.ok())
    return ternc.status();
  absl::StatusOr<std::string> version = terncVersion(*ternc);
  if (!version.ok())
    return version.status();
  uint64_t bytes = 0;
  absl::StatusOr<uint64_t> h = hashFileContents(ggufPath, &bytes);
  if (!h.ok())
    return h.status();
  std::vector<std::string> flags = {"--target", req.target};
  if (!req.kernel.empty())
    flags.insert(flags.end(), {"--kernel", req.kernel});
  if (!req.actQuant.empty())
    flags.insert(flags.end(), {"--act-quant", req.actQuant});
  if (!req.i2sLayout.empty())
    flags.insert(flags.end(), {"--i2s-layout", req.i2sLayout});
  if (!req.head.empty())
    flags.insert(flags.end(), {"--head", req.head});
  if (!req.kvType.empty())
    flags.insert(flags.end(), {"--kv-type", req.kvType});
  flags.insert(flags.end(), req.extraArgs.begin(), req.extraArgs.end());
  // The compiler's identity: its version line (which names the ukernel
  // bitcode it links) and the hash of the executable itself, so that a
  // rebuilt ternc never reuses artifacts made by an older build.
  absl::StatusOr<uint64_t> terncHash = hashFileContents(*ternc);
  if (!terncHash.ok())
    return terncHash.status();
  std::string keyText = fmt::format("{:016x}|{}|{}|{:016x}", *h, bytes, *version, *terncHash);
  for (const std::string &f : flags)
    keyText += "|" + f;
  const uint64_t key = contentHash(keyText);
  absl::StatusOr<std::string> dir = cacheDir();
  if (!dir.ok())
    return dir.status();
  const std::string stem = fs::path(ggufPath).stem().string();
  const std::string out = (fs::path(*dir) / fmt::format("{}-{:016x}.tern", stem, key)).string();
  if (fs::exists(out)) {
    artifact::OpenOptions o;
    o.verifyWeightsHash = false; // ArtifactModel::open verifies again anyway
    if (artifact::Artifact::open(out, o).ok()) {
      log << fmt::format("tern: using cached {}\n", out);
      return out;
    }
    log << fmt::format("tern: cached {} does not validate; recompiling\n", out);
  }
  const std::string tmp = fmt::format("{}.{}.tmp.tern", out, ::getpid());
  std::vector<std::string> argv = {*ternc, "compile", ggufPath, "-o", tmp};
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::string cmd;
  for (const std::string &a : argv)
    cmd += (cmd.empty() ? "" : " ") + a;
  log << "tern: compiling: " << cmd << "\n";
  log.flush();
  absl::StatusOr<int> rc = runProcess(argv, -1);
  if (!rc.ok() || *rc != 0) {
    std::error_code ec;
    fs::remove(tmp, ec);
    if (!rc.ok())
      return rc.status();
    return absl::FailedPreconditionError(
        fmt::format("ternc failed (exit status {}) compiling {}: {}", *rc, ggufPath, cmd));
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec)
    return absl::InternalError(
        fmt::format("cannot move {} into the cache as {}: {}", tmp, out, ec.message()));
  log << fmt::format("tern: cached {}\n", out);
  return out;
}

} // namespace tern::exec
