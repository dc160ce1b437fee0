// x86 ukernels (AVX2, AVX-512 VNNI). Filled in below.
#include "runtime/ukernels/common.h"
