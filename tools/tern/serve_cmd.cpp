// `tern serve MODEL`: the OpenAI-compatible HTTP server (runtime/server,
// docs/server.md). This file only parses the flags, opens the model and waits
// for SIGINT / SIGTERM.
#include "tools/tern/serve_cmd.h"

#include <csignal>
#include <filesystem>
#include <thread>

#include <pthread.h>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/model/kv_cache.h"
#include "runtime/server/server.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"

namespace tern::cli {

namespace {

constexpr const char *kServeUsage =
    R"(usage: tern serve MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [-c N]
                  [--kv-mem BYTES] [--api-key KEY] [--max-queue N] [options]

Serves MODEL over an OpenAI-compatible HTTP API: POST /v1/chat/completions,
/v1/completions (streamed as server-sent events with "stream": true),
GET /v1/models, /health (503 while loading), /metrics (Prometheus), POST
/tokenize, /detokenize. Requests run together in shared forward calls
(continuous batching); each gets a context of up to -c positions out of one
KV pool; prompt prefixes are reused across requests. Stops on SIGINT/SIGTERM.
See docs/server.md.
)";

struct ServeFlags {
  std::string modelPath;
  model::ModelOptions opts;
  server::ServerOptions srv;
  bool compile = false, reference = false;
  std::string kernel, target = "native";
};

bool endsWith(const std::string &s, std::string_view suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// A .tern as is; a .gguf compiled into the artifact cache where a ternc is
// found (or --compile), else on the reference forward pass (as `tern run`).
absl::StatusOr<std::unique_ptr<model::Model>> openServed(ServeFlags &f, std::ostream &err) {
  if (f.compile && f.reference)
    return absl::InvalidArgumentError("--compile and --reference exclude each other");
  if (endsWith(f.modelPath, ".tern") || f.reference)
    return exec::openModel(f.modelPath, f.opts);
  const bool compile = f.compile || exec::findTernc().ok();
  if (!compile) {
    err << "tern serve: note: no ternc found ($TERNC, next to tern, $PATH): running " << f.modelPath
        << " on the scalar reference forward pass\n";
    return exec::openModel(f.modelPath, f.opts);
  }
  exec::CompileRequest req;
  req.target = f.target;
  req.kernel = f.kernel;
  absl::StatusOr<std::string> path = exec::compileToCache(f.modelPath, req, err);
  if (!path.ok())
    return path.status();
  return exec::openModel(*path, f.opts);
}

} // namespace

int cmdServe(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  ServeFlags f;
  f.opts.parallel = 4;
  args::Parser p("tern serve", kServeUsage);
  p.positional("MODEL", "", [&f](std::string_view, const std::string &v) -> absl::Status {
    if (!f.modelPath.empty())
      return absl::InvalidArgumentError(
          fmt::format("unexpected argument '{}' (the model is '{}')", v, f.modelPath));
    f.modelPath = v;
    return absl::OkStatus();
  });
  p.string("--host", &f.srv.host, "ADDR", "address to listen on (default 127.0.0.1)");
  p.integer("--port", &f.srv.port, 0, 65535, "N", "port (default 8080; 0 = any free port)");
  p.string("--api-key", &f.srv.apiKey, "KEY",
           "require Authorization: Bearer KEY (not on /health,\n/metrics)");
  p.integer("--max-queue", &f.srv.maxQueue, 0, 1u << 16, "N",
            "requests waiting beyond --parallel before 429 (default 64)");
  p.integer("--prefill-chunk", &f.srv.prefillChunk, 1, 1u << 20, "N",
            "prompt tokens per batched step, over all requests\n(default 1024)");
  p.value("--max-body", "BYTES", "largest request body (default 8M; larger: 413)",
          [&f](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<uint64_t> b = model::parseByteSize(v);
            if (!b.ok())
              return absl::InvalidArgumentError(
                  fmt::format("{}: {}", flag, std::string(b.status().message())));
            f.srv.maxBodyBytes = *b;
            return absl::OkStatus();
          });
  p.string("--alias", &f.srv.modelId, "NAME",
           "the model name /v1/models lists (default: file name)");
  p.string("--chat-template", &f.srv.chatTemplate, "NAME",
           "chat template (bitnet, llama3, chatml; default: the\nGGUF's)");
  p.section("model options");
  p.integer("-t,--threads", &f.opts.threads, 0, 1024, "N",
            "thread pool size (default 1; 0 = all cores)");
  p.integer("-c,--ctx-size", &f.opts.contextLength, 1, 1u << 24, "N",
            "context length per request (default min(model's, 4096))");
  p.integer("-np,--parallel", &f.opts.parallel, 1, 1u << 16, "N",
            "requests generating at once; the KV pool holds this\nmany full contexts "
            "(default 4)");
  p.value("--kv-mem", "BYTES", "KV pool size in bytes, e.g. 512M, 2G (wins over -c x\n--parallel)",
          [&f](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<uint64_t> b = model::parseByteSize(v);
            if (!b.ok())
              return absl::InvalidArgumentError(
                  fmt::format("{}: {}", flag, std::string(b.status().message())));
            f.opts.kvMemBytes = *b;
            return absl::OkStatus();
          });
  p.integer("--kv-page-size", &f.opts.pageSize, 1, 1u << 16, "N",
            "KV positions per page (default 16)");
  p.flag(
      "--no-prefix-cache", [&f] { f.opts.prefixCache = false; },
      "do not share KV pages of common prompt prefixes");
  p.flag("--compile", &f.compile, ".gguf only: compile with ternc (the default when found)");
  p.flag("--reference", &f.reference, ".gguf only: the scalar reference forward pass");
  p.string("--target", &f.target, "T", "when compiling: ternc's --target (default native)");
  p.string("--kernel", &f.kernel, "K", "when compiling: ternc's --kernel");
  if (std::optional<int> rc = p.parseOrExit(a, out, err))
    return *rc;
  if (f.modelPath.empty()) {
    err << "tern serve: error: no model given (tern serve MODEL ...)\n";
    return 2;
  }
  if (f.srv.modelId.empty())
    f.srv.modelId = std::filesystem::path(f.modelPath).filename().string();
  f.srv.parallel = f.opts.parallel;

  // SIGINT/SIGTERM are taken by sigwait below: block them before any thread
  // starts, so every thread inherits the mask. A client that hangs up must
  // not kill the server with SIGPIPE.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  server::Server srv(f.srv);
  if (absl::Status st = srv.bind(); !st.ok()) {
    err << "tern serve: error: " << statusMessage(st) << "\n";
    return 1;
  }
  srv.start();
  // Tests and scripts read this line for the port (with --port 0).
  out << fmt::format("tern serve: listening on http://{}:{} (loading {})", f.srv.host, srv.port(),
                     f.modelPath)
      << std::endl;

  std::atomic<int> rc{0};
  std::thread loader([&] {
    absl::StatusOr<std::unique_ptr<model::Model>> m = openServed(f, err);
    const uint32_t ctx = m.ok() ? (*m)->options().contextLength : 0;
    absl::Status st = m.ok() ? srv.attach(std::move(*m)) : m.status();
    if (!st.ok()) {
      err << "tern serve: error: " << f.modelPath << ": " << statusMessage(st) << "\n";
      rc = st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
      kill(getpid(), SIGTERM);
      return;
    }
    out << fmt::format("tern serve: ready: {} (context {} per request, --parallel {})",
                       f.srv.modelId, ctx, f.opts.parallel)
        << std::endl;
  });
  int sig = 0;
  sigwait(&sigs, &sig);
  loader.join();
  srv.stop();
  if (rc == 0)
    out << "tern serve: stopped (" << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ")" << std::endl;
  return rc;
}

} // namespace tern::cli
