/* The cuda targets' launchers (launchers.cpp): tern_uk_<op>_cuda with the
 * signature of the CPU ukernel of the same op (ukernels.h), and the gather
 * of the lm_head's rows the generated code calls instead of its memcpy loop.
 * tern_uk_embed_f32_cuda and tern_uk_attention_gqa_f32_cuda are declared by
 * the macro but do not exist (no GPU kernel: ternc refuses those ops for the
 * cuda targets). */
#ifndef TERN_CUDA_LAUNCHERS_H
#define TERN_CUDA_LAUNCHERS_H

#include "runtime/ukernels/ukernels.h"

#ifdef __cplusplus
extern "C" {
#endif

TERN_UK_DECLARE_OPS(cuda)
void tern_uk_matmul_i2s_cuda(TERN_UK_MATMUL_I8_ARGS);
void tern_uk_lm_head_f16_cuda(TERN_UK_LM_HEAD_ARGS);
void tern_uk_gather_rows_cuda(const tern_ctx *ctx, int64_t n_out, const int32_t *out_rows,
                              const uint8_t *src, uint8_t *dst, int64_t row_bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TERN_CUDA_LAUNCHERS_H */
