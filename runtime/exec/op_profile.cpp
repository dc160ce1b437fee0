#include "runtime/exec/op_profile.h"

#include <chrono>

namespace tern::exec {

namespace {
int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
} // namespace

const char *OpProfile::name(int kind) {
  static const char *const kNames[kOpKinds] = {
      "matmul_qkv", "matmul_o", "matmul_gate_up", "matmul_down", "matmul_other", "head",   "embed",
      "norm",       "quantize", "rope",           "attention",   "add",          "act_mul"};
  return kind >= 0 && kind < kOpKinds ? kNames[kind] : "?";
}

uint64_t OpProfile::opsNs() const {
  uint64_t s = 0;
  for (const Entry &e : ops_)
    s += e.ns;
  return s;
}

uint64_t OpProfile::otherNs() const {
  const uint64_t ops = opsNs();
  return forwardNs_ > ops ? forwardNs_ - ops : 0;
}

// Roles from the shapes: fused q/k/v (3 segments) or any matmul reading the
// hidden state into q_dim or kv_dim rows is qkv; the first hidden x q_dim
// matmul after attention is o; gate/up read the hidden state into ffn rows
// (2 segments when fused); down reads ffn columns.
int OpProfile::classifyMatmul(int64_t m, int64_t k, int64_t segments) {
  const int64_t E = config_.nEmbd, Q = config_.qDim(), KV = config_.kvDim(), F = config_.nFf;
  if (segments == 3)
    return kMatmulQkv;
  if (k == Q && m == E && afterAttention_) {
    afterAttention_ = false;
    return kMatmulO;
  }
  if (k == E && (m == Q || m == KV || m == Q + 2 * KV || m == Q + KV))
    return kMatmulQkv;
  if (k == E && (m == F || m == 2 * F))
    return kMatmulGateUp;
  if (k == F && m == E)
    return kMatmulDown;
  return kMatmulOther;
}

void OpProfile::hook(void *self, int32_t op, int32_t end, int64_t a, int64_t b, int64_t c) {
  OpProfile &p = *static_cast<OpProfile *>(self);
  if (!end) {
    p.startNs_ = nowNs();
    p.startWait_ = p.waitCounter_ ? p.waitCounter_->load(std::memory_order_relaxed) : 0;
    return;
  }
  const uint64_t dt = uint64_t(std::max<int64_t>(0, nowNs() - p.startNs_));
  const uint64_t waited =
      p.waitCounter_ ? p.waitCounter_->load(std::memory_order_relaxed) - p.startWait_ : 0;
  int kind;
  switch (op) {
  case TERN_OP_MATMUL:
    kind = p.classifyMatmul(a, b, c);
    break;
  case TERN_OP_LM_HEAD:
    kind = kHead;
    break;
  case TERN_OP_EMBED:
    kind = kEmbed;
    break;
  case TERN_OP_NORM:
    kind = kNorm;
    break;
  case TERN_OP_QUANTIZE:
    kind = kQuantize;
    break;
  case TERN_OP_ROPE:
    kind = kRope;
    break;
  case TERN_OP_ATTENTION:
    kind = kAttention;
    p.afterAttention_ = true;
    break;
  case TERN_OP_ADD:
    kind = kAdd;
    break;
  case TERN_OP_ACT_MUL:
    kind = kActMul;
    break;
  default:
    ++p.unknown_;
    return;
  }
  p.ops_[size_t(kind)].ns += dt;
  p.ops_[size_t(kind)].waitNs += waited;
  ++p.ops_[size_t(kind)].calls;
}

} // namespace tern::exec
