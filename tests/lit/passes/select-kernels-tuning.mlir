// Tests that a tuning file (`ternc tune`'s output, here hand-written:
// Inputs/tuning-avx2.json) replaces the built-in cost table: with tl2
// measured far faster than i2s, tl2 at the one measured tile wins where the
// built-in table picks i2s; the remark and the module's receipt name the
// file; layouts and act-quants the file did not measure keep the built-in
// rows; and a bad, missing or mismatched file is refused, naming the file
// and the field.
// RUN: tern-opt %s --tern-select-kernels="target=avx2" | FileCheck %s --check-prefix=BUILTIN
// RUN: tern-opt %s --tern-select-kernels="target=avx2 tuning=%S/Inputs/tuning-avx2.json" | FileCheck %s --check-prefix=TUNED
// RUN: tern-opt %s --tern-select-kernels="target=avx2 tuning=%S/Inputs/tuning-avx2.json explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPLAIN
// RUN: tern-opt %s --tern-select-kernels="target=avx2 act-quant=none tuning=%S/Inputs/tuning-avx2.json" | FileCheck %s --check-prefix=NONE
// RUN: tern-opt %s --tern-select-kernels="target=avx2 kernel=i2s tuning=%S/Inputs/tuning-avx2.json explain=true" 2>&1 | FileCheck %s --check-prefix=FORCED

// Errors.
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=MISSING -DFILE=%t.missing.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx512_vnni tuning=%S/Inputs/tuning-avx2.json" 2>&1 | FileCheck %s --check-prefix=ISA
// RUN: sed 's/"version": 1/"version": 2/' %S/Inputs/tuning-avx2.json > %t.v2.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.v2.json" 2>&1 | FileCheck %s --check-prefix=VERSION
// RUN: sed 's/"tile_m": 64, "tile_k": 384/"tile_m": 8, "tile_k": 384/' %S/Inputs/tuning-avx2.json > %t.tile.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.tile.json" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: sed 's/"rates": \[\[1, 90.0\], \[64, 200.0\]\]/"rates": [[64, 90.0], [1, 200.0]]/' %S/Inputs/tuning-avx2.json > %t.order.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.order.json" 2>&1 | FileCheck %s --check-prefix=ORDER
// RUN: sed 's/"rows": 0/"rowz": 0/' %S/Inputs/tuning-avx2.json > %t.typo.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.typo.json" 2>&1 | FileCheck %s --check-prefix=TYPO
// RUN: sed 's/"layout": "tl2", "act": "token", "variant": "avx2"/"layout": "tl2", "act": "token", "variant": "ref"/' %S/Inputs/tuning-avx2.json > %t.variant.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.variant.json" 2>&1 | FileCheck %s --check-prefix=VARIANT
// RUN: head -c 100 %S/Inputs/tuning-avx2.json > %t.cut.json
// RUN: not tern-opt %s --tern-select-kernels="target=avx2 tuning=%t.cut.json" 2>&1 | FileCheck %s --check-prefix=JSON

// BUILTIN: tern.cost_table = "built-in"
// BUILTIN: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"

// The measured rates make tl2 (90 G/s per core at decode) beat i2s (20-25
// G/s): every ternary matrix gets tl2 at its one measured tile.
// TUNED: tern.cost_table = "tuning {{.*}}tuning-avx2.json", tern.head = "f16", tern.kernel_sources = {blk.0.attn_k.weight = "tuning {{.*}}tuning-avx2.json", blk.0.attn_q.weight = "tuning {{.*}}tuning-avx2.json"
// TUNED: kernel = #tern.kernel<tl2, avx2, tile_m = 64, tile_k = 384>, weight = #tern.weight<"blk.0.attn_q.weight"
// TUNED: kernel = #tern.kernel<tl2, avx2, tile_m = 64, tile_k = 384>, weight = #tern.weight<"blk.0.attn_k.weight"
// TUNED: kernel = #tern.kernel<tl2, avx2, tile_m = 64, tile_k = 384>, weight = #tern.weight<"blk.0.ffn_up.weight"
// TUNED: kernel = #tern.kernel<tl2, avx2, tile_m = 64, tile_k = 384>, weight = #tern.weight<"blk.0.ffn_down.weight"
// TUNED: kernel = #tern.kernel<f16, avx2,{{.*}}weight = #tern.weight<"output.weight"

// EXPLAIN: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on avx2, act-quant token, max-batch 512: tl2 tile_m=64 tile_k=384 (avx2 kernel, tuned 90.0/200.0 G/s per core decode/prefill){{.*}} (tuning {{.*}}tuning-avx2.json: lowest score = decode + 4 x prefill per token); best other layout tl2v tile_m={{[0-9]+}} tile_k=2560 (avx2 kernel, measured
// The 6912-row entry is the nearest measured shape for ffn_up at 128x1024.
// tl2v, which the file does not list, is priced from the built-in table;
// for ffn_down too (memory-bound at decode, fewer bytes than the tuned i2s).
// EXPLAIN: remark: kernel for 'blk.0.ffn_up.weight' [6912x2560] {{.*}}: tl2 tile_m=64 tile_k=384 {{.*}}best other layout tl2v tile_m=128 tile_k=2560 (avx2 kernel, measured 30.7/49.0 G/s
// EXPLAIN: remark: kernel for 'blk.0.ffn_down.weight' [2560x6912] {{.*}}: tl2 tile_m=64 tile_k=384 {{.*}}best other layout tl2v tile_m=128 tile_k=6912 (avx2 kernel, measured 30.7/49.0 G/s
// The head's measured rate (0.5 G/s) makes it compute bound.
// EXPLAIN: remark: kernel for 'output.weight' [128256x2560] on avx2: f16 (the only kernel for f16 weights), memory {{[0-9.]+}} us/token, compute {{[0-9.]+}} us/token (avx2 kernel, tuned 0.5 G/s per core; tuning {{.*}}tuning-avx2.json)

// act-quant none: the file has no f32-activation entry, the built-in row
// (i2s with ymm FMA) chooses.
// NONE: tern.cost_table = "tuning {{.*}}", tern.kernel_sources = {blk.0.attn_k.weight = "built-in"
// NONE: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"

// A forced layout takes the tuned tiles of that layout.
// FORCED: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on avx2, act-quant token, max-batch 512: i2s tile_m={{[0-9]+}} tile_k={{[0-9]+}} (avx2 kernel, tuned {{.*}}(forced; rates from tuning {{.*}}tuning-avx2.json)
// FORCED: blk.0.attn_q.weight = "tuning {{.*}}tuning-avx2.json (forced)"

// MISSING: error: tuning file '[[FILE]]': cannot be read
// ISA: error: tuning file '{{.*}}tuning-avx2.json': field 'isa' is 'avx2', but target avx512_vnni runs avx512_vnni kernels (tune with --target avx512_vnni, or compile for avx2)
// VERSION: error: tuning file '{{.*}}.v2.json': field 'version': version 2 is not supported (this ternc reads 1)
// TILE: error: tuning file '{{.*}}.tile.json': field 'kernels[0].tile_m': kernel tile 8x384 is refused: tl2 needs tile_m to be a multiple of 16
// ORDER: error: tuning file '{{.*}}.order.json': field 'kernels[0].rates[1]': batch sizes must be ascending, 1 after 64
// TYPO: error: tuning file '{{.*}}.typo.json': field 'rowz': unknown field
// VARIANT: error: tuning file '{{.*}}.variant.json': field 'kernels[0].variant' is 'ref', but target avx2 runs tl2 (act-quant token) with the 'avx2' kernel
// JSON: error: tuning file '{{.*}}.cut.json': not valid JSON

func.func @b2b4t(%x2560: tensor<?x2560xf32>, %x6912: tensor<?x6912xf32>) {
  %attn_q = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_q.weight", [2560, 2560], i2_s, offset = 0, bytes = 1638432>} : tensor<?x2560xf32> -> tensor<?x2560xf32>
  %attn_k = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_k.weight", [640, 2560], i2_s, offset = 0, bytes = 409632>} : tensor<?x2560xf32> -> tensor<?x640xf32>
  %ffn_up = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.ffn_up.weight", [6912, 2560], i2_s, offset = 0, bytes = 4423712>} : tensor<?x2560xf32> -> tensor<?x6912xf32>
  %ffn_down = tern.bitlinear %x6912 {weight = #tern.weight<"blk.0.ffn_down.weight", [2560, 6912], i2_s, offset = 0, bytes = 4423712>} : tensor<?x6912xf32> -> tensor<?x2560xf32>
  %head = tern.lm_head %x2560 {weight = #tern.weight<"output.weight", [128256, 2560], f16, offset = 0, bytes = 656670720>} : tensor<?x2560xf32> -> tensor<?x128256xf32>
  return
}
