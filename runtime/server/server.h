// `tern serve`'s HTTP side: an OpenAI-compatible server on cpp-httplib
// (Debian's libcpp-httplib 0.11) in front of the Scheduler. docs/server.md.
//
//   POST /v1/chat/completions, /v1/completions   (SSE when "stream": true)
//   GET  /v1/models, /health, /metrics
//   POST /tokenize, /detokenize
//
// The server listens before the model is loaded: /health answers 503 until
// attach() hands it the model, every model endpoint 503 too. httplib's
// thread pool is sized for the streams the scheduler admits (running +
// queued) plus a few for probes, so a queued stream never starves /health.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "runtime/include/tern/tern.h"
#include "runtime/model/model.h"

namespace tern::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (see Server::port())
  std::string apiKey;     // non-empty: Authorization: Bearer KEY on /v1/*, /tokenize, /detokenize
  uint32_t parallel = 1;  // requests generating at once
  uint32_t maxQueue = 64; // requests waiting beyond those (then 429)
  uint32_t prefillChunk = 1024;
  uint64_t maxBodyBytes = 8u << 20; // larger bodies: 413
  std::string modelId;              // the name /v1/models lists
  std::string chatTemplate;         // --chat-template override ("" = the GGUF's)
  int readTimeoutSeconds = 30;
};

class Server {
public:
  explicit Server(ServerOptions opts);
  ~Server(); // stops and joins
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Binds host:port. Errors name the address.
  absl::Status bind();
  // The bound port (after bind()).
  int port() const;
  // Serves in a background thread until stop().
  void start();
  // The model is loaded: takes the C API handle (owned from here on, freed
  // by the server, also on error), picks the chat template and starts the
  // scheduler; /health turns 200. Everything the server does with the model
  // goes through tern.h. Errors (no tokenizer, unknown template) leave the
  // server answering 503.
  absl::Status attach(tern_model *model);
  // For C++ callers: the model handed to the C API first (capi::adoptModel).
  absl::Status attach(std::unique_ptr<model::Model> model);
  void stop();
  // Blocks until the server thread ends (stop() or a listen failure).
  void wait();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace tern::server
