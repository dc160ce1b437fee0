// AArch64 ukernels (NEON, dotprod).
#include "runtime/ukernels/common.h"
