// The extern "C" matmul entries of one ISA file, one per variants.def row of
// that ISA, each running MatmulBody<layout, f32>::type over the row tiles.
// The file defines TERN_UK_DEFINE_<its isa>(layout, act) as
// TERN_UK_ENTRY_##act(layout, <its isa>), specializes MatmulBody, then
// includes this header (inside its target region, after common.h). No
// include guard: included once per ISA file.
#define TERN_UK_ENTRY_i8(layout, isa)                                                              \
  extern "C" void tern_uk_matmul_##layout##_##isa(TERN_UK_MATMUL_I8_ARGS) {                        \
    using Body = tern_uk::MatmulBody<tern_uk::kLayout_##layout, false>::type;                      \
    tern_uk::matmul_i8<tern_uk::kLayout_##layout, &tern_uk::row_tiles_task<Body>, Body>(           \
        TERN_UK_MATMUL_I8_NAMES);                                                                  \
  }
#define TERN_UK_ENTRY_f32(layout, isa)                                                             \
  extern "C" void tern_uk_matmul_##layout##_f32act_##isa(TERN_UK_MATMUL_F32_ARGS) {                \
    using Body = tern_uk::MatmulBody<tern_uk::kLayout_##layout, true>::type;                       \
    tern_uk::matmul_f32<tern_uk::kLayout_##layout, &tern_uk::row_tiles_task<Body>>(                \
        TERN_UK_MATMUL_F32_NAMES);                                                                 \
  }

#ifndef TERN_UK_DEFINE_ref
#define TERN_UK_DEFINE_ref(layout, act)
#endif
#ifndef TERN_UK_DEFINE_avx2
#define TERN_UK_DEFINE_avx2(layout, act)
#endif
#ifndef TERN_UK_DEFINE_avx512_vnni
#define TERN_UK_DEFINE_avx512_vnni(layout, act)
#endif
#ifndef TERN_UK_DEFINE_neon
#define TERN_UK_DEFINE_neon(layout, act)
#endif
#ifndef TERN_UK_DEFINE_neon_dotprod
#define TERN_UK_DEFINE_neon_dotprod(layout, act)
#endif
#ifndef TERN_UK_DEFINE_neon_i8mm
#define TERN_UK_DEFINE_neon_i8mm(layout, act)
#endif

#define TERN_UK_VARIANT(layout, act, isa) TERN_UK_DEFINE_##isa(layout, act)
#define TERN_UK_PENDING_VARIANT(layout, act, isa) TERN_UK_DEFINE_##isa(layout, act)
#include "runtime/ukernels/variants.def"
#undef TERN_UK_PENDING_VARIANT
#undef TERN_UK_VARIANT
