/* The ternc ABI: what the compiler's generated code, the ukernels and the
 * runtime agree on. Plain C, shared by compiler and runtime (the runtime
 * never includes compiler headers). Versioned like a schema: any change to a
 * struct layout, an entry point or a ukernel signature bumps
 * TERN_ABI_VERSION, and the runtime refuses code built for another version.
 *
 * Shapes in comments: [n] = tokens in the batch, dims are compile-time
 * constants of the model.
 */
#ifndef TERN_ABI_H
#define TERN_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1: one sequence of consecutive positions per call, last token's logits.
 * 2: tern_batch: tokens of several sequences (per-token position and
 *    sequence), logits of a list of rows; per-sequence page tables.
 * 3: tern_ctx.profile / profile_arg: per-op profiling hook of the ukernels.
 * 4: one parallel region per forward call: tern_ctx.tid / nthreads /
 *    barrier; the runtime calls tern_model_forward on every thread of the
 *    region at once, each ukernel takes its static slice and ends with a
 *    barrier.
 * 5: tern_ctx.gpu: GPU backends (cuda targets, docs/cuda.md). The code of a
 *    cuda artifact calls launchers (tern_uk_<op>_cuda) that hand the GPU
 *    kernel's parameter struct (runtime/cuda/kernels.h, part of this ABI)
 *    to ctx->gpu->launch; weights, scratch and the KV pool are device
 *    memory there. CPU code ignores the field (NULL for CPU backends). */
#define TERN_ABI_VERSION 5u

/* ---- parallelism: the runtime's thread pool, called back by ukernels ---- */

/* Work on items [begin, end). */
typedef void (*tern_range_fn)(void *arg, int64_t begin, int64_t end);
/* Runs fn over [0, n) split into chunks of at least `grain` items across the
 * pool and returns when all are done. Results must not depend on the split. */
typedef void (*tern_parallel_for_fn)(void *pool, int64_t n, int64_t grain, tern_range_fn fn,
                                     void *arg);

/* Waits until every thread of the forward call's region (tern_ctx.nthreads)
 * has called it with the same arg; memory written before it by any thread
 * is visible after it to all. */
typedef void (*tern_barrier_fn)(void *arg, int32_t tid);

/* ---- profiling: optional hook the ukernels call around every op ---- */

/* The kind of op a ukernel entry runs (tern_profile_fn's `op`). */
typedef enum tern_op_kind {
  TERN_OP_MATMUL = 0,  /* ternary matmul: a = rows (all segments), b = k, c = segments */
  TERN_OP_LM_HEAD = 1, /* dense head: a = vocab, b = hidden */
  TERN_OP_EMBED = 2,   /* a = tokens, b = hidden */
  TERN_OP_NORM = 3, /* rms_norm, alone or fused with the int8 quantization: a = tokens, b = dim */
  TERN_OP_QUANTIZE = 4,  /* a = tokens, b = dim */
  TERN_OP_ROPE = 5,      /* a = tokens, b = heads */
  TERN_OP_ATTENTION = 6, /* KV write + attention: a = tokens, b = heads, c = layer */
  TERN_OP_ADD = 7,       /* residual add: a = tokens, b = dim */
  TERN_OP_ACT_MUL = 8,   /* silu / relu^2 gate times up: a = tokens, b = dim */
  TERN_OP_KIND_COUNT = 9
} tern_op_kind;

/* Called on the forward call's thread (in a region: by thread 0 only) with
 * end = 0 when an op starts and end = 1 when it is done (the op's
 * parallel_for calls, or in a region its closing barrier, included). */
typedef void (*tern_profile_fn)(void *arg, int32_t op, int32_t end, int64_t a, int64_t b,
                                int64_t c);

/* ---- the paged KV cache ----
 * One pool of pages; a page holds page_size positions of K and V for one
 * layer: K[page_size][kv_dim] followed by V[page_size][kv_dim], elements of
 * the code's KV type: f32 (tern_uk_attention_gqa_f32_*) or IEEE f16
 * (tern_uk_attention_gqa_f16_*, `ternc compile --kv-type f16`, the
 * artifact metadata's "kv_type"; the runtime sizes the pool by it).
 * Position p of layer l of sequence s lives in page
 * page_tables[s][l][p / page_size], row p % page_size. The runtime guarantees
 * pages exist for every position the call writes, and that every page a call
 * writes belongs to one sequence only (pages shared by several sequences,
 * e.g. after a fork or through the prefix cache, are only read). */
typedef struct tern_kv_view {
  void *pool;                               /* base of the pool */
  int64_t page_elems;                       /* elements per page = 2 * page_size * kv_dim */
  int64_t page_size;                        /* positions per page */
  int64_t n_seq;                            /* sequences of this call: entries of page_tables */
  const int32_t *const *const *page_tables; /* [n_seq][n_layer][max_ctx / page_size] page ids */
} tern_kv_view;

/* ---- GPU backends (ABI 5; docs/cuda.md) ----
 * The GPU kernels a launcher may ask for; each takes one parameter struct of
 * runtime/cuda/kernels.h by value (named after the kernel). */
typedef enum tern_gpu_kernel {
  TERN_GPU_MATMUL_I2S_I8 = 0,            /* I2sParams */
  TERN_GPU_LM_HEAD_F16 = 1,              /* LmHeadParams */
  TERN_GPU_RMS_NORM_QUANTIZE_I8 = 2,     /* RmsQuantParams */
  TERN_GPU_RMS_NORM_F32 = 3,             /* RmsParams */
  TERN_GPU_QUANTIZE_I8 = 4,              /* QuantParams */
  TERN_GPU_ADD_F32 = 5,                  /* ElementwiseParams */
  TERN_GPU_RELU2_MUL_F32 = 6,            /* ElementwiseParams */
  TERN_GPU_SILU_MUL_F32 = 7,             /* ElementwiseParams */
  TERN_GPU_ROPE_NEOX_F32 = 8,            /* RopeParams */
  TERN_GPU_EMBED_F16 = 9,                /* EmbedParams */
  TERN_GPU_GATHER_ROWS = 10,             /* GatherParams */
  TERN_GPU_KV_STORE_F16 = 11,            /* AttnF16Params */
  TERN_GPU_ATTENTION_GQA_F16 = 12,       /* AttnF16Params */
  TERN_GPU_MATMUL_I2S_I8_MMA = 13,       /* I2sParams; n >= 16 (tensor cores, sm_80+) */
  TERN_GPU_ATTENTION_GQA_F16_SPLIT = 14, /* AttnF16Params; a position >= 32 (block per head) */
  TERN_GPU_KERNEL_COUNT = 15
} tern_gpu_kernel;

/* What a GPU backend gives the launchers for one forward call. Under a GPU
 * backend ctx->weights, ctx->scratch and ctx->kv.pool are device addresses
 * (never dereferenced by the host code); the batch's arrays stay host
 * memory (the generated code validates them there) and the backend mirrors
 * them to the device before the call (logits: copied back after it). */
typedef struct tern_gpu {
  void *arg; /* passed back to the functions below */
  /* Queues `kernel` (tern_gpu_kernel) with its parameter struct (`bytes`
   * bytes, copied before it returns) on the call's stream. A failure is
   * recorded by the backend, which then skips the call's later launches and
   * fails the forward call after it returns. */
  void (*launch)(void *arg, int32_t kernel, const void *params, int64_t bytes);
  /* The device mirror of a pointer into one of the batch's arrays (tokens,
   * positions, seq, out_rows, logits); any other pointer is returned as is. */
  void *(*batch_ptr)(void *arg, const void *host);
  const int32_t *page_ids; /* device: [kv.n_seq][n_layer][max_pages], kv.page_tables flattened */
  int64_t n_layer;         /* layers of page_ids */
  int64_t max_pages;       /* pages per sequence and layer in page_ids */
} tern_gpu;

/* ---- the context every entry point and ukernel receives ----
 * One forward call runs either on one thread (nthreads 0 or 1: the ukernels
 * split their work through parallel_for, op by op) or as one parallel region
 * (nthreads > 1): the runtime calls tern_model_forward on nthreads threads
 * at once, with the same ctx except tid and the same batch; every ukernel
 * does the static slice [w * tid / nthreads, w * (tid + 1) / nthreads) of
 * its w work items (the split parallel_for would make) and ends with
 * barrier(barrier_arg, tid); code between ukernels that writes memory does
 * its own slice and then calls the barrier. Every thread returns the same
 * value. */
typedef struct tern_ctx {
  uint32_t abi_version; /* TERN_ABI_VERSION */
  uint32_t reserved0;
  const uint8_t *weights; /* the artifact's weights section, 64-byte aligned */
  uint8_t *scratch; /* >= desc->scratch_per_token * n + desc->scratch_fixed bytes, 64-aligned */
  tern_kv_view kv;
  void *pool; /* passed back to parallel_for */
  tern_parallel_for_fn parallel_for;
  void *profile_arg;       /* passed back to profile */
  tern_profile_fn profile; /* NULL: no profiling */
  int32_t tid;             /* this thread's index in the region, 0..nthreads-1 */
  int32_t nthreads;        /* threads running this call together; 0 or 1: one */
  void *barrier_arg;       /* passed back to barrier */
  tern_barrier_fn barrier; /* used when nthreads > 1 */
  const tern_gpu *gpu;     /* GPU backends only (ABI 5): the launchers' hooks; NULL on a CPU */
} tern_ctx;

/* ---- what the generated shared object exports ---- */

/* Static facts of the compiled model (checked against the artifact's
 * metadata before the first call). */
typedef struct tern_model_desc {
  uint32_t abi_version;
  uint32_t act_quant; /* 0: none (float activations), 1: per-token int8 */
  int64_t hidden, n_layer, n_head, n_kv_head, head_dim, ffn, vocab, max_ctx;
  int64_t max_batch;         /* most tokens one forward call takes */
  int64_t scratch_per_token; /* scratch bytes per token of the batch */
  int64_t scratch_fixed;     /* plus this many */
  int64_t weights_bytes;     /* size of the weights section the code expects */
  const char *kernels;       /* JSON: the ukernel chosen for every op, as compiled */
} tern_model_desc;

/* `tern_model_describe` */
typedef const tern_model_desc *(*tern_describe_fn)(void);

/* One forward call: n tokens, each of some sequence at some position, in
 * any order (continuous batching: decode tokens of several sequences and
 * prefill chunks share a call). Within a call a (seq, position) pair appears
 * at most once. Token t writes its K/V at positions[t] of sequence seq[t],
 * then attends causally over positions 0..positions[t] of that sequence:
 * the ones cached by earlier calls and the ones this call writes. A token's
 * results do not depend on the other tokens of the call (batch invariance).
 *
 * Logits are written for n_out rows: row i holds the logits of token
 * out_rows[i] (any token, each at most once; usually each sequence's last
 * token of the call, all tokens for perplexity). n_out may be 0 (a prefill
 * chunk whose logits nobody needs). */
typedef struct tern_batch {
  int64_t n;                /* tokens, 1..desc->max_batch */
  const int32_t *tokens;    /* [n] token ids */
  const int32_t *positions; /* [n] position of each token in its sequence, < max_ctx */
  const int32_t *seq;       /* [n] sequence of each token: index into ctx->kv.page_tables */
  int64_t n_out;            /* logit rows, 0..n */
  const int32_t *out_rows;  /* [n_out] token index (0..n-1) of each row */
  float *logits;            /* [n_out][vocab] */
} tern_batch;

/* `tern_model_forward`: runs one batch (above), appending the tokens' K/V
 * to their sequences' pages. 0 on success; non-zero, before anything is
 * written, when n is outside [1, max_batch], n_out outside [0, n], a
 * position outside [0, max_ctx), a seq outside [0, kv.n_seq) or an out row
 * outside [0, n). Code built for ABI 1 exported
 *   int32_t tern_model_forward(ctx, n, tokens, positions, logits)
 * and is refused (desc->abi_version): recompile the model. */
typedef int32_t (*tern_forward_fn)(const tern_ctx *ctx, const tern_batch *batch);

#define TERN_SYM_DESCRIBE "tern_model_describe"
#define TERN_SYM_FORWARD "tern_model_forward"

/* ---- the .tern artifact file ----
 * [header][section table][sections...], every section 64-byte aligned,
 * little-endian. Every hash is XXH3-64 (seed 0) of the bytes it covers
 * (runtime/support/hash.h). Format 2: XXH3-64 hashes (format 1, from older
 * ternc builds, used a slower hash and is refused: recompile the model). */
#define TERN_ARTIFACT_MAGIC "TERNART\x01" /* 8 bytes */
#define TERN_ARTIFACT_FORMAT_VERSION 2u
#define TERN_ARTIFACT_ALIGN 64u

enum tern_section_kind {
  TERN_SECTION_METADATA = 1,  /* JSON: hparams, target, act_quant, kernels per matrix, ... */
  TERN_SECTION_TOKENIZER = 2, /* a GGUF holding only the source's tokenizer.* keys */
  TERN_SECTION_WEIGHTS = 3,   /* packed weights + norms/embeddings the code reads */
  TERN_SECTION_CODE = 4,      /* an ELF shared object exporting the entry points */
  TERN_SECTION_GPU_CODE = 5,  /* cuda targets: the GPU kernels (PTX, cubins), docs/cuda.md */
};

typedef struct tern_artifact_header {
  char magic[8];           /* TERN_ARTIFACT_MAGIC */
  uint32_t format_version; /* TERN_ARTIFACT_FORMAT_VERSION */
  uint32_t header_bytes;   /* sizeof(tern_artifact_header) */
  uint32_t abi_version;    /* TERN_ABI_VERSION of the code */
  uint32_t section_count;
  uint64_t section_table_offset; /* tern_artifact_section[section_count] */
  uint64_t file_bytes;           /* total size */
  char target_triple[64];        /* NUL-terminated, e.g. "x86_64-unknown-linux-gnu" */
  char cpu[32];                  /* e.g. "x86-64-v3", "generic" */
  char cpu_features[256];        /* required, comma-separated: "+avx2,+fma,+f16c" */
  char compiler_version[32];     /* "ternc 0.1.0" */
  uint64_t source_hash;          /* XXH3-64 of the source GGUF file */
  uint64_t source_bytes;         /* its size */
  uint64_t header_hash;          /* XXH3-64 of this header, header_hash = 0 */
  uint8_t reserved[64];
} tern_artifact_header;

typedef struct tern_artifact_section {
  uint32_t kind;   /* tern_section_kind */
  uint32_t flags;  /* 0 */
  uint64_t offset; /* from the start of the file, multiple of 64 */
  uint64_t size;
  uint64_t hash; /* XXH3-64 of the section's bytes */
} tern_artifact_section;

#ifdef __cplusplus
} /* extern "C" */
static_assert(sizeof(tern_artifact_header) == 8 + 4 * 4 + 8 + 8 + 64 + 32 + 256 + 32 + 8 * 3 + 64,
              "artifact header layout");
static_assert(sizeof(tern_artifact_section) == 32, "artifact section layout");
/* The generated code reads these fields at fixed offsets (LP64). */
static_assert(sizeof(tern_kv_view) == 40 && sizeof(tern_ctx) == 128, "ctx layout");
static_assert(sizeof(tern_batch) == 56, "batch layout");
#endif

#endif /* TERN_ABI_H */
