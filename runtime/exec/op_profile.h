// OpProfile: time per op kind of the compiled code's forward calls, from the
// ukernels' profiling hook (tern_abi.h, tern_ctx.profile). Matmuls are told
// apart by role from their shape and fusion (qkv, o, gate_up, down); the
// time a forward call spends outside every ukernel is "other" (the
// generated glue, batch preparation, KV page bookkeeping), and the time the
// forward thread waited for the pool's workers after its own share of a
// parallel op is reported beside it (it is part of the ops' times).
// ArtifactModel::setProfile installs one; `tern bench --profile` prints it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/abi/tern_abi.h"
#include "runtime/model/config.h"

namespace tern::exec {

class OpProfile {
public:
  enum Kind {
    kMatmulQkv,
    kMatmulO,
    kMatmulGateUp,
    kMatmulDown,
    kMatmulOther,
    kHead,
    kEmbed,
    kNorm,
    kQuantize,
    kRope,
    kAttention,
    kAdd,
    kActMul,
    kOpKinds
  };
  static const char *name(int kind);

  explicit OpProfile(const model::ModelConfig &config) : config_(config) {}

  struct Entry {
    uint64_t ns = 0, calls = 0;
    uint64_t waitNs = 0; // of ns: the forward thread waiting for the others at the op's barriers
  };
  const std::array<Entry, kOpKinds> &ops() const { return ops_; }
  uint64_t opsNs() const; // sum of ops()
  uint64_t forwardNs() const { return forwardNs_; }
  uint64_t forwardCalls() const { return forwardCalls_; }
  uint64_t otherNs() const; // forwardNs - opsNs (>= 0)
  uint64_t waitNs() const { return waitNs_; }
  uint64_t unknownOps() const { return unknown_; } // hook calls with an unknown op kind

  // Where the forward thread's waiting is counted (a running total in ns,
  // e.g. the region barrier's), read at each op's start and end to charge
  // each op kind its waiting. nullptr: no per-op waiting.
  void setWaitCounter(const std::atomic<uint64_t> *c) { waitCounter_ = c; }

  // The hook (tern_profile_fn) over an OpProfile* as arg.
  static void hook(void *self, int32_t op, int32_t end, int64_t a, int64_t b, int64_t c);
  // Called by ArtifactModel around each forward().
  void addForward(uint64_t ns, uint64_t waitNs) {
    forwardNs_ += ns;
    waitNs_ += waitNs;
    ++forwardCalls_;
  }

private:
  int classifyMatmul(int64_t m, int64_t k, int64_t segments);

  model::ModelConfig config_;
  std::array<Entry, kOpKinds> ops_{};
  uint64_t forwardNs_ = 0, forwardCalls_ = 0, waitNs_ = 0, unknown_ = 0;
  int64_t startNs_ = 0;
  const std::atomic<uint64_t> *waitCounter_ = nullptr;
  uint64_t startWait_ = 0;
  bool afterAttention_ = false; // the next hidden x q_dim matmul is o
};

} // namespace tern::exec
