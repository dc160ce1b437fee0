// Tests that every verifier of the tern dialect rejects what it must, with
// the message it should.
// RUN: tern-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{weight 'w' in tq2_0 needs 16896 bytes, attribute says 100}}
func.func @f(%x: tensor<?x256xf32>) attributes {w = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 100>} { return }

// -----

// expected-error @+1 {{weight 'w': row length 100 is not a multiple of the tq2_0 block (256)}}
func.func @f() attributes {w = #tern.weight<"w", [4, 100], tq2_0, offset = 0, bytes = 100>} { return }

// -----

// expected-error @+1 {{weight 'w' must be a vector or a matrix, got rank 3}}
func.func @f() attributes {w = #tern.weight<"w", [2, 2, 2], f32, offset = 0, bytes = 32>} { return }

// -----

// expected-error @+1 {{weight 'w' has a non-positive dimension 0}}
func.func @f() attributes {w = #tern.weight<"w", [0, 4], f32, offset = 0, bytes = 0>} { return }

// -----

// expected-error @+1 {{weight has an empty name}}
func.func @f() attributes {w = #tern.weight<"", [4], f32, offset = 0, bytes = 16>} { return }

// -----

// expected-error @+1 {{weight 'w' has zero bytes}}
func.func @f() attributes {w = #tern.weight<"w", [4, 96], tl2, offset = 0, bytes = 0>} { return }

// -----

// expected-error @+1 {{kernel tiles must be positive, got tile_m = 0, tile_k = 256}}
func.func @f() attributes {k = #tern.kernel<i2s, avx2, tile_m = 0, tile_k = 256>} { return }

// -----

// expected-error @+1 {{kernel layout tl2 needs tile_k to be a multiple of 48, got 256}}
func.func @f() attributes {k = #tern.kernel<tl2, avx2, tile_m = 32, tile_k = 256>} { return }

// -----

// expected-error @+1 {{kernel layout tl1 (tbl lookup) needs an AArch64 target, got avx2}}
func.func @f() attributes {k = #tern.kernel<tl1, avx2, tile_m = 32, tile_k = 256>} { return }

// -----

// expected-error @+1 {{kernel layout tl2 (pshufb lookup) needs an x86-64 target, got neon}}
func.func @f() attributes {k = #tern.kernel<tl2, neon, tile_m = 32, tile_k = 192>} { return }

// -----

// The lookup-table kernels run 16 rows per vector and have no scalar path.
// expected-error @+1 {{kernel tile 8x96 is refused: tl2 needs tile_m to be a multiple of 16 (16 rows per vector) and at most 1024, got 8}}
func.func @f() attributes {k = #tern.kernel<tl2, avx2, tile_m = 8, tile_k = 96>} { return }

// -----

// expected-error @+1 {{kernel tile 2048x96 is refused: tl2 needs tile_m to be a multiple of 16 (16 rows per vector) and at most 1024, got 2048}}
func.func @f() attributes {k = #tern.kernel<tl2, avx512_vnni, tile_m = 2048, tile_k = 96>} { return }

// -----

// expected-error @+1 {{kernel tile 24x64 is refused: tl1 needs tile_m to be a multiple of 16 (16 rows per vector), got 24}}
func.func @f() attributes {k = #tern.kernel<tl1, neon_dotprod, tile_m = 24, tile_k = 64>} { return }

// -----

func.func @embed(%t: tensor<?xi32>) {
  // expected-error @+1 {{'tern.embed' op result width 128 does not match embedding width 256 of 'token_embd.weight'}}
  %h = tern.embed %t {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?xi32> -> tensor<?x128xf32>
  return
}

// -----

func.func @embed(%t: tensor<?xi32>) {
  // expected-error @+1 {{'tern.embed' op embedding weight 'e' in tq2_0 is not supported (float or q8_0 expected)}}
  %h = tern.embed %t {weight = #tern.weight<"e", [4, 256], tq2_0, offset = 0, bytes = 264>} : tensor<?xi32> -> tensor<?x256xf32>
  return
}

// -----

func.func @embed(%t: tensor<?xi32>) {
  // expected-error @+1 {{'tern.embed' op embedding weight 'e' must be a matrix, got rank 1}}
  %h = tern.embed %t {weight = #tern.weight<"e", [256], f32, offset = 0, bytes = 1024>} : tensor<?xi32> -> tensor<?x256xf32>
  return
}

// -----

func.func @embed(%t: tensor<3xi32>) {
  // expected-error @+1 {{'tern.embed' op has 3 tokens but 4 result rows}}
  %h = tern.embed %t {weight = #tern.weight<"e", [4, 256], f32, offset = 0, bytes = 4096>} : tensor<3xi32> -> tensor<4x256xf32>
  return
}

// -----

func.func @embed(%t: tensor<?xi32>) {
  // expected-error @+1 {{'tern.embed' op result must have a static feature width}}
  %h = tern.embed %t {weight = #tern.weight<"e", [4, 256], f32, offset = 0, bytes = 4096>} : tensor<?xi32> -> tensor<?x?xf32>
  return
}

// -----

func.func @norm(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm' op input width 256 does not match norm weight 'n' of size 128}}
  %y = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"n", [128], f32, offset = 0, bytes = 512>} : tensor<?x256xf32>
  return
}

// -----

func.func @norm(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm' op norm weight 'n' must be f32, got f16}}
  %y = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"n", [256], f16, offset = 0, bytes = 512>} : tensor<?x256xf32>
  return
}

// -----

func.func @norm(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm' op norm weight 'n' must be a vector}}
  %y = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"n", [1, 256], f32, offset = 0, bytes = 1024>} : tensor<?x256xf32>
  return
}

// -----

func.func @norm(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm' op eps must be positive}}
  %y = tern.rms_norm %x {eps = 0.0 : f32, weight = #tern.weight<"n", [256], f32, offset = 0, bytes = 1024>} : tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op input width 256 does not match K = 512 of weight 'w'}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [256, 512], tq2_0, offset = 0, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op result width 128 does not match M = 512 of weight 'w'}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [512, 256], tq2_0, offset = 0, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x128xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op bitlinear weight 'w' in q8_0 cannot hold ternary values}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [32, 256], q8_0, offset = 0, bytes = 8704>} : tensor<?x256xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op bitlinear weight 'w' must be a matrix, got rank 1}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [256], f32, offset = 0, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<2x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op input and result token counts differ}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<2x256xf32> -> tensor<3x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op kernel layout f16 cannot serve a ternary matrix}}
  %y = tern.bitlinear %x {kernel = #tern.kernel<f16, avx2, tile_m = 8, tile_k = 256>, weight = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op has a packed weight but no kernel}}
  %y = tern.bitlinear %x {packed = #tern.packed<i2s, offset = 0, bytes = 1, checksum = 0>, weight = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op packed layout tq2 differs from kernel layout i2s}}
  %y = tern.bitlinear %x {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, packed = #tern.packed<tq2, offset = 0, bytes = 1, checksum = 0>, weight = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @bitlinear(%x: tensor<?x?xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op input must have a static feature width}}
  %y = tern.bitlinear %x {weight = #tern.weight<"w", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x?xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @rope(%x: tensor<?x256xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.rope' op input width 256 is not n_heads * head_dim = 3 * 64}}
  %y = tern.rope %x, %p {freq_base = 10000.0 : f32, head_dim = 64 : i64, n_heads = 3 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope(%x: tensor<?x256xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.rope' op rot_dim 65 must be even and in (0, head_dim = 64]}}
  %y = tern.rope %x, %p {freq_base = 10000.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 65 : i64} : tensor<?x256xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope(%x: tensor<?x256xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.rope' op n_heads and head_dim must be positive}}
  %y = tern.rope %x, %p {freq_base = 10000.0 : f32, head_dim = 0 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope(%x: tensor<?x256xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.rope' op freq_base must be positive}}
  %y = tern.rope %x, %p {freq_base = -1.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope(%x: tensor<2x256xf32>, %p: tensor<3xi32>) {
  // expected-error @+1 {{'tern.rope' op input and positions token counts differ}}
  %y = tern.rope %x, %p {freq_base = 10000.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<2x256xf32>, tensor<3xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op n_heads 4 is not a multiple of n_kv_heads 3}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 3 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op query width 256 is not n_heads * head_dim = 512}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 8 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x256xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op key width 256 is not n_kv_heads * head_dim = 128}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x256xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x64xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op value width 64 is not n_kv_heads * head_dim = 128}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x64xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op layer must be non-negative}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = -1 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op max_ctx must be positive}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 0 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op scale must be positive}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.0 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @attn(%q: tensor<2x256xf32>, %k: tensor<3x128xf32>, %v: tensor<2x128xf32>, %p: tensor<2xi32>) {
  // expected-error @+1 {{'tern.attention' op query, key, value and positions token counts differ}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<3x128xf32>, tensor<2x128xf32>, tensor<2xi32>
  return
}

// -----

func.func @attn(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'tern.attention' op n_heads, n_kv_heads and head_dim must be positive}}
  %o = tern.attention %q, %k, %v, %p {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 64 : i64, n_heads = 4 : i64, n_kv_heads = 0 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  return
}

// -----

func.func @gated(%a: tensor<?x256xf32>, %b: tensor<?x128xf32>) {
  // expected-error @+1 {{'tern.silu_mul' op requires the same type for all operands and results}}
  %y = "tern.silu_mul"(%a, %b) : (tensor<?x256xf32>, tensor<?x128xf32>) -> tensor<?x256xf32>
  return
}

// -----

func.func @lm_head(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.lm_head' op result width 100 does not match vocabulary size 356 of 'token_embd.weight'}}
  %l = tern.lm_head %x {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x100xf32>
  return
}

// -----

func.func @lm_head(%x: tensor<?x128xf32>) {
  // expected-error @+1 {{'tern.lm_head' op input width 128 does not match hidden size 256 of 'token_embd.weight'}}
  %l = tern.lm_head %x {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x128xf32> -> tensor<?x356xf32>
  return
}

// -----

func.func @lm_head(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.lm_head' op kernel layout q8_0 cannot read a f16 weight}}
  %l = tern.lm_head %x {kernel = #tern.kernel<q8_0, avx2, tile_m = 8, tile_k = 256>, weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  return
}

// -----

func.func @lm_head(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.lm_head' op kernel layout i2s cannot serve a non-ternary matrix}}
  %l = tern.lm_head %x {kernel = #tern.kernel<i2s, avx2, tile_m = 8, tile_k = 256>, weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  return
}

// -----

func.func @quantize(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.quantize' op quantized result shape must match the input shape}}
  %q, %s = tern.quantize %x : tensor<?x256xf32> -> tensor<?x128xi8>, tensor<?xf32>
  return
}

// -----

func.func @quantize(%x: tensor<2x256xf32>) {
  // expected-error @+1 {{'tern.quantize' op scales must have one entry per token}}
  %q, %s = tern.quantize %x : tensor<2x256xf32> -> tensor<2x256xi8>, tensor<3xf32>
  return
}

// -----

func.func @rnq(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm_quantize' op input width 256 does not match norm weight 'n' of size 128}}
  %q, %s = tern.rms_norm_quantize %x {eps = 1.0e-5 : f32, weight = #tern.weight<"n", [128], f32, offset = 0, bytes = 512>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  return
}

// -----

func.func @rnq(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm_quantize' op norm weight 'n' must be an f32 vector}}
  %q, %s = tern.rms_norm_quantize %x {eps = 1.0e-5 : f32, weight = #tern.weight<"n", [256], f16, offset = 0, bytes = 512>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  return
}

// -----

func.func @rnq(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm_quantize' op eps must be positive}}
  %q, %s = tern.rms_norm_quantize %x {eps = 0.0 : f32, weight = #tern.weight<"n", [256], f32, offset = 0, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op has 1 weights but 2 results}}
  %a, %b = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [512, 256], tq2_0, offset = 0, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op needs at least one weight}}
  "tern.ternary_matmul"(%q, %s) {weights = []} : (tensor<?x256xi8>, tensor<?xf32>) -> ()
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op weights must share one storage format, 'u' is i2_s}}
  %a, %b = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [512, 256], tq2_0, offset = 0, bytes = 33792>, #tern.weight<"u", [512, 256], i2_s, offset = 0, bytes = 32800>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op result width 256 does not match M = 512 of weight 'u'}}
  %a, %b = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [512, 256], tq2_0, offset = 0, bytes = 33792>, #tern.weight<"u", [512, 256], tq2_0, offset = 0, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x256xf32>
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op input width 256 does not match K = 512 of weight 'g'}}
  %a = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [256, 512], tq2_0, offset = 0, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @tm(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op weight 'g' in q8_0 cannot hold ternary values}}
  %a = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [32, 256], q8_0, offset = 0, bytes = 8704>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @tm(%q: tensor<2x256xi8>, %s: tensor<3xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op scales must have one entry per token}}
  %a = tern.ternary_matmul %q, %s {weights = [#tern.weight<"g", [256, 256], tq2_0, offset = 0, bytes = 16896>]} : tensor<2x256xi8>, tensor<3xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @uk(%q: tensor<?x256xi8>) {
  // expected-error @+1 {{'tern.ukernel_call' op static argument 'x' must be an integer, float or string}}
  %a = tern.ukernel_call "k"(%q) {static_args = {x = [1, 2]}} : (tensor<?x256xi8>) -> tensor<?x256xf32>
  return
}

// -----

func.func @uk(%q: tensor<?x256xi8>) {
  // expected-error @+1 {{'tern.ukernel_call' op needs a callee name}}
  %a = tern.ukernel_call ""(%q) {static_args = {}} : (tensor<?x256xi8>) -> tensor<?x256xf32>
  return
}

// -----

func.func @uk(%q: tensor<?x256xi8>) {
  // expected-error @+1 {{'tern.ukernel_call' op results may have at most one dynamic dimension (tokens)}}
  %a = tern.ukernel_call "k"(%q) {static_args = {}} : (tensor<?x256xi8>) -> tensor<?x?xf32>
  return
}
