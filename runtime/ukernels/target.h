// Target regions for the ukernel ISA files: every function defined between
// TERN_UK_TARGET_BEGIN(features) and TERN_UK_TARGET_END() -- including the
// templates of common.h and the body headers, included inside the region and
// instantiated there -- is compiled for `features`, with clang (the bitcode
// the compiler links: `#pragma clang attribute`) and with gcc (the host
// library: `#pragma GCC target`) alike. Include intrinsic headers and
// ukernels.h before the region. Whatever is defined inside must have
// internal linkage (static, or an unnamed namespace): the same template
// compiled for two targets in two files must never be merged into one.
#ifndef TERN_UKERNELS_TARGET_H
#define TERN_UKERNELS_TARGET_H

#define TERN_UK_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define TERN_UK_TARGET_BEGIN(clang_features, gcc_features)                                         \
  TERN_UK_PRAGMA(clang attribute push(__attribute__((target(clang_features))), apply_to = function))
#define TERN_UK_TARGET_END() TERN_UK_PRAGMA(clang attribute pop)
#else
#define TERN_UK_TARGET_BEGIN(clang_features, gcc_features)                                         \
  TERN_UK_PRAGMA(GCC push_options) TERN_UK_PRAGMA(GCC target(gcc_features))
#define TERN_UK_TARGET_END() TERN_UK_PRAGMA(GCC pop_options)
#endif

#endif // TERN_UKERNELS_TARGET_H
