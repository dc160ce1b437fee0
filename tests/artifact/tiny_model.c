/* A hand-written stand-in for generated code (tests only): exports the ABI
 * v2 entry points with tiny dims and a deterministic forward pass that
 * writes K/V through the page tables and reads every cached position back,
 * so wrong paging, chunking or positions change the logits.
 *
 *   K[l][p] = {token, l, 0, 0}, V[l][p] = {p, token + p, 0, 0}
 *   h(t) = sum_{l, p <= pos[t]} (K[l][p][0] * (p + 1) * (l + 1) + V[l][p][0])
 *   logits[row][v] = ((h(out_rows[row]) * 31 + v * 7) % 97) + weights[v % WEIGHTS] / 256
 * over the pages of token t's sequence
 * (tests/exec/exec_test.cpp mirrors this). */
#include <stdint.h>
#include <string.h>

#include "runtime/abi/tern_abi.h"

/* TINY_DESC_ABI: the ABI version the desc claims (tests of the refusal of
 * code built for another ABI). */
#ifndef TINY_DESC_ABI
#define TINY_DESC_ABI TERN_ABI_VERSION
#endif
#ifndef TINY_MAX_BATCH
#define TINY_MAX_BATCH 4
#endif
#define N_LAYER 2
#define KV_DIM 4
#define VOCAB 32
#define MAX_CTX 64
#define WEIGHTS 256
#define SCRATCH_PER_TOKEN 32
#define SCRATCH_FIXED 64

static const tern_model_desc kDesc = {
    TINY_DESC_ABI,
    1,
    /*hidden*/ 8,
    N_LAYER,
    /*n_head*/ 2,
    /*n_kv_head*/ 1,
    /*head_dim*/ KV_DIM,
    /*ffn*/ 16,
    VOCAB,
    MAX_CTX,
    TINY_MAX_BATCH,
    SCRATCH_PER_TOKEN,
    SCRATCH_FIXED,
    WEIGHTS,
    "{\"blk.0.attn_qkv\": \"tern_uk_matmul_i2s_ref\", \"blk.1.attn_qkv\": "
    "\"tern_uk_matmul_i2s_ref\", \"output\": \"tern_uk_lm_head_f16_ref\"}"};

__attribute__((visibility("default"))) const tern_model_desc *tern_model_describe(void) {
  return &kDesc;
}

static float *kRow(const tern_ctx *c, int32_t s, int l, int64_t p) {
  const int32_t page = c->kv.page_tables[s][l][p / c->kv.page_size];
  return (float *)c->kv.pool + (int64_t)page * c->kv.page_elems + (p % c->kv.page_size) * KV_DIM;
}
static float *vRow(const tern_ctx *c, int32_t s, int l, int64_t p) {
  return kRow(c, s, l, p) + c->kv.page_size * KV_DIM;
}

struct Job {
  const tern_ctx *ctx;
  const tern_batch *b;
};

static void writeKv(void *arg, int64_t b, int64_t e) {
  const struct Job *j = (const struct Job *)arg;
  for (int64_t i = b; i < e; ++i) {
    const int64_t t = i / N_LAYER;
    const int l = (int)(i % N_LAYER);
    const int64_t p = j->b->positions[t];
    const int32_t s = j->b->seq[t];
    float *k = kRow(j->ctx, s, l, p), *v = vRow(j->ctx, s, l, p);
    k[0] = (float)j->b->tokens[t];
    k[1] = (float)l;
    k[2] = k[3] = 0;
    v[0] = (float)p;
    v[1] = (float)(j->b->tokens[t] + p);
    v[2] = v[3] = 0;
  }
}

__attribute__((visibility("default"))) int32_t tern_model_forward(const tern_ctx *ctx,
                                                                  const tern_batch *b) {
  if (!ctx || ctx->abi_version != TERN_ABI_VERSION || !b)
    return 1;
  const int64_t n = b->n;
  if (n <= 0 || n > TINY_MAX_BATCH || b->n_out < 0 || b->n_out > n)
    return 2;
  if ((uintptr_t)ctx->weights % 64 || (uintptr_t)ctx->scratch % 64 || (uintptr_t)ctx->kv.pool % 64)
    return 3;
  if (ctx->kv.page_elems != 2 * ctx->kv.page_size * KV_DIM || !ctx->parallel_for)
    return 4;
  for (int64_t i = 0; i < n; ++i) {
    if (b->positions[i] < 0 || b->positions[i] >= MAX_CTX)
      return 5;
    if (b->seq[i] < 0 || b->seq[i] >= ctx->kv.n_seq)
      return 6;
    if (b->tokens[i] < 0 || b->tokens[i] >= VOCAB)
      return 7;
  }
  for (int64_t r = 0; r < b->n_out; ++r)
    if (b->out_rows[r] < 0 || b->out_rows[r] >= n)
      return 8;
  /* ABI 4: in a parallel region (nthreads > 1) every thread runs this
   * function; each does its slice of the K/V rows and of the output rows,
   * with a barrier between the two, like generated code. */
  const int64_t T = ctx->nthreads > 1 ? ctx->nthreads : 1, tid = ctx->nthreads > 1 ? ctx->tid : 0;
  if (T > 1 && (!ctx->barrier || tid < 0 || tid >= T))
    return 9;
  /* Touch every scratch byte promised (ASan catches a short buffer). */
  if (tid == 0)
    memset(ctx->scratch, 0xab, (size_t)(SCRATCH_PER_TOKEN * n + SCRATCH_FIXED));
  struct Job job = {ctx, b};
  if (T > 1) {
    writeKv(&job, n * N_LAYER * tid / T, n * N_LAYER * (tid + 1) / T);
    ctx->barrier(ctx->barrier_arg, ctx->tid);
  } else {
    ctx->parallel_for(ctx->pool, n * N_LAYER, 1, writeKv, &job);
  }
  for (int64_t r = b->n_out * tid / T; r < b->n_out * (tid + 1) / T; ++r) {
    const int64_t t = b->out_rows[r];
    const int64_t last = b->positions[t];
    const int32_t s = b->seq[t];
    int64_t h = 0;
    for (int l = 0; l < N_LAYER; ++l)
      for (int64_t p = 0; p <= last; ++p)
        h += (int64_t)kRow(ctx, s, l, p)[0] * (p + 1) * (l + 1) + (int64_t)vRow(ctx, s, l, p)[0];
    float *out = b->logits + r * VOCAB;
    for (int v = 0; v < VOCAB; ++v)
      out[v] = (float)((h * 31 + v * 7) % 97) + (float)ctx->weights[v % WEIGHTS] / 256.0f;
  }
  /* The runtime reads the logits after every thread has returned. */
  return 0;
}
