// `tern serve MODEL`: the OpenAI-compatible HTTP server (runtime/server,
// docs/server.md). This file only parses the flags, opens the model (with the
// tool-only options, then handed to the C API: the server runs on tern.h)
// and waits for SIGINT / SIGTERM.
#include "tools/tern/serve_cmd.h"
#include "tools/tern/common.h"

#include <csignal>
#include <filesystem>
#include <thread>

#include <pthread.h>

#include "fmt/format.h"
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
KV pool; prompt prefixes are reused across requests. -np/--parallel is the
number of requests generating at once (default 4 here, not 1; the KV pool
holds that many full contexts). Stops on SIGINT/SIGTERM. See docs/server.md.
)";

} // namespace

int cmdServe(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  server::ServerOptions so;
  c.opts.parallel = 4;
  args::Parser p("tern serve", kServeUsage);
  p.string("--host", &so.host, "ADDR", "address to listen on (default 127.0.0.1)");
  p.integer("--port", &so.port, 0, 65535, "N", "port (default 8080; 0 = any free port)");
  p.string("--api-key", &so.apiKey, "KEY",
           "require Authorization: Bearer KEY (not on /health,\n/metrics)");
  p.integer("--max-queue", &so.maxQueue, 0, 1u << 16, "N",
            "requests waiting beyond --parallel before 429 (default 64)");
  p.integer("--prefill-chunk", &so.prefillChunk, 1, 1u << 20, "N",
            "prompt tokens per batched step, over all requests\n(default 1024)");
  p.value("--max-body", "BYTES", "largest request body (default 8M; larger: 413)",
          [&so](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<uint64_t> b = model::parseByteSize(v);
            if (!b.ok())
              return absl::InvalidArgumentError(
                  fmt::format("{}: {}", flag, std::string(b.status().message())));
            so.maxBodyBytes = *b;
            return absl::OkStatus();
          });
  p.string("--alias", &so.modelId, "NAME", "the model name /v1/models lists (default: file name)");
  p.string("--chat-template", &so.chatTemplate, "NAME",
           "chat template (bitnet, llama3, chatml; default: the\nGGUF's)");
  // The model flags every command takes; -np/--parallel (requests
  // generating at once) defaults to 4 here.
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (so.modelId.empty())
    so.modelId = std::filesystem::path(c.modelPath).filename().string();
  so.parallel = c.opts.parallel;

  // SIGINT/SIGTERM are taken by sigwait below: block them before any thread
  // starts, so every thread inherits the mask. A client that hangs up must
  // not kill the server with SIGPIPE.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  server::Server srv(so);
  if (absl::Status st = srv.bind(); !st.ok()) {
    err << "tern serve: error: " << statusMessage(st) << "\n";
    return 1;
  }
  srv.start();
  // Tests and scripts read this line for the port (with --port 0).
  out << fmt::format("tern serve: listening on http://{}:{} (loading {})", so.host, srv.port(),
                     c.modelPath)
      << std::endl;

  std::atomic<int> rc{0};
  std::thread loader([&] {
    absl::StatusOr<ModelHandle> m = openHandle(c, err);
    tern_model_info info{};
    if (m.ok())
      tern_model_get_info(m->get(), &info);
    const uint32_t ctx = info.n_ctx;
    absl::Status st = m.ok() ? srv.attach(m->release()) : m.status();
    if (!st.ok()) {
      err << "tern serve: error: " << c.modelPath << ": " << statusMessage(st) << "\n";
      rc = st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
      kill(getpid(), SIGTERM);
      return;
    }
    out << fmt::format("tern serve: ready: {} (context {} per request, --parallel {})", so.modelId,
                       ctx, c.opts.parallel)
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
