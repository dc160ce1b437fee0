// The run-time CPU check behind the body choice inside
// tern_uk_matmul_tl2v_avx512_vnni (ukernels_avx512_vnni.cpp), shared with
// the runtime's receipts (runtime/exec: `ukernels run: ... (tl2v body:
// vbmi)`), so both say the same. Plain cpuid, no target region, no libc:
// include it outside a TERN_UK_TARGET region (with the intrinsic headers).
#ifndef TERN_UKERNELS_X86_CPU_H
#define TERN_UKERNELS_X86_CPU_H

#if defined(__x86_64__)
#include <cpuid.h>

// AVX512-VBMI (cpuid 7.0 ecx bit 1) and GFNI (ecx bit 8). The AVX-512 state
// itself is not checked: the callers run only where avx512_vnni runs.
static inline bool tern_uk_cpu_has_vbmi_gfni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7)
    return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (c & (1u << 1)) && (c & (1u << 8));
}
#endif

#endif // TERN_UKERNELS_X86_CPU_H
