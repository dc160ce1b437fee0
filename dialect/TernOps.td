//===- TernOps.td - tern dialect operations ----------------*- tablegen -*-===//
//
// Graph-level ops (what the importer emits), fused ops (what tern-fuse
// makes) and the kernel-level call (what tern-lower-to-kernels makes).
// Every op has a verifier for its shape and format invariants.
//
//===----------------------------------------------------------------------===//

#ifndef TERN_OPS_TD
#define TERN_OPS_TD

include "dialect/TernBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

class Tern_Op<string mnemonic, list<Trait> traits = []>
    : Op<Tern_Dialect, mnemonic, traits>;

def Tern_Activation : TensorRankOf<[F32], [2]>;
def Tern_QActivation : TensorRankOf<[I8], [2]>;
def Tern_TokenScales : TensorRankOf<[F32], [1]>;
def Tern_Ids : TensorRankOf<[I32], [1]>;

def Tern_WeightArrayAttr : TypedArrayAttrBase<Tern_WeightAttr, "array of weights">;
def Tern_KernelArrayAttr : TypedArrayAttrBase<Tern_KernelAttr, "array of kernels">;

//===----------------------------------------------------------------------===//
// Graph level
//===----------------------------------------------------------------------===//

def Tern_EmbedOp : Tern_Op<"embed", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    Gathers one row of the `[vocab, hidden]` embedding table per token id.
    The table is a float (or Q8_0) weight; row i is dequantized to f32.

    ```mlir
    %h = tern.embed %tokens {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>}
        : tensor<?xi32> -> tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Tern_Ids:$tokens, Tern_WeightAttr:$weight);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$tokens attr-dict `:` type($tokens) `->` type($result)";
  let hasVerifier = 1;
}

def Tern_RmsNormOp : Tern_Op<"rms_norm", [Pure, SameOperandsAndResultType]> {
  let summary = "RMSNorm with a learned f32 gain";
  let description = [{
    y[t, i] = x[t, i] / sqrt(mean_i(x[t, i]^2) + eps) * weight[i].

    ```mlir
    %y = tern.rms_norm %x {eps = 9.99999974e-06 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>}
        : tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input, Tern_WeightAttr:$weight,
                   F32Attr:$eps);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Tern_BitLinearOp : Tern_Op<"bitlinear", [Pure]> {
  let summary = "BitLinear: per-token int8 activations x ternary weights x scale";
  let description = [{
    BitNet b1.58's linear layer without bias. Per token t the activations are
    quantized, s = 127 / max(|x[t]|, 1e-5), q = clamp(round(x[t] * s), -128,
    127); the integer dot products with the ternary codes of `weight`
    (`[M, K]`) are scaled back: y[t, m] = acc[t, m] * w_scale / s.

    The weight may be stored in a ternary format (TQ1_0, TQ2_0, I2_S, TL1,
    TL2) or in a float type holding ternary values (as HF converters write
    them). `kernel` (set by tern-select-kernels) and `packed` (set by
    tern-pack-weights) record later decisions; `decode_kernel` and
    `decode_packed` (`ternc --decode-layout`) a second copy of the weight in
    another layout, which small batches (decode) read instead.

    ```mlir
    %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>}
        : tensor<?x256xf32> -> tensor<?x512xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input, Tern_WeightAttr:$weight,
                   OptionalAttr<Tern_KernelAttr>:$kernel,
                   OptionalAttr<Tern_PackedAttr>:$packed,
                   OptionalAttr<Tern_KernelAttr>:$decode_kernel,
                   OptionalAttr<Tern_PackedAttr>:$decode_packed);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Tern_RopeOp : Tern_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding, NEOX (rotate-half) style";
  let description = [{
    Rotates the first `rot_dim` features of each of the `n_heads` heads of
    `input` (`[tokens, n_heads * head_dim]`) by position-dependent angles
    pos * freq_base^(-2i / rot_dim), pairing feature i with i + rot_dim / 2
    (NEOX / rotate-half).

    ```mlir
    %qr = tern.rope %q, %pos {freq_base = 5.000000e+05 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64}
        : tensor<?x256xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input, Tern_Ids:$positions,
                   I64Attr:$n_heads, I64Attr:$head_dim, I64Attr:$rot_dim,
                   F32Attr:$freq_base);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat =
      "$input `,` $positions attr-dict `:` type($input) `,` type($positions)";
  let hasVerifier = 1;
}

def Tern_AttentionOp : Tern_Op<"attention", [
    AllTypesMatch<["query", "result"]>,
    MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "causal grouped-query attention over the layer's KV cache";
  let description = [{
    Appends `key` and `value` (`[tokens, n_kv_heads * head_dim]`) to the KV
    cache of `layer` at `positions`, then, for each query token and head h,
    attends causally over the cached positions 0..pos of KV head
    h / (n_heads / n_kv_heads) with softmax(q.k * scale). The cache holds at
    most `max_ctx` positions. The result has the query's shape.

    ```mlir
    %o = tern.attention %q, %k, %v, %pos {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 1.250000e-01 : f32}
        : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Tern_Activation:$query, Tern_Activation:$key,
                   Tern_Activation:$value, Tern_Ids:$positions,
                   I64Attr:$layer, I64Attr:$n_heads, I64Attr:$n_kv_heads,
                   I64Attr:$head_dim, I64Attr:$max_ctx, F32Attr:$scale);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $positions attr-dict `:` type($query) `,`
    type($key) `,` type($value) `,` type($positions)
  }];
  let hasVerifier = 1;
}

class Tern_GatedOp<string mnemonic, string act> :
    Tern_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "gated FFN activation: " # act # "(gate) * up";
  let arguments = (ins Tern_Activation:$gate, Tern_Activation:$up);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Tern_SiluMulOp : Tern_GatedOp<"silu_mul", "silu"> {
  let description = [{
    y = silu(gate) * up, elementwise (arch `bitnet`).

    ```mlir
    %y = tern.silu_mul %gate, %up : tensor<?x512xf32>
    ```
  }];
}

def Tern_Relu2MulOp : Tern_GatedOp<"relu2_mul", "relu^2"> {
  let description = [{
    y = relu(gate)^2 * up, elementwise (arch `bitnet-b1.58`, `bitnet-25`).

    ```mlir
    %y = tern.relu2_mul %gate, %up : tensor<?x6912xf32>
    ```
  }];
}

def Tern_AddOp : Tern_Op<"add", [Pure, SameOperandsAndResultType, Commutative]> {
  let summary = "elementwise addition (residual connections)";
  let description = [{
    ```mlir
    %h1 = tern.add %h0, %attn : tensor<?x256xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$lhs, Tern_Activation:$rhs);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Tern_LmHeadOp : Tern_Op<"lm_head", [Pure]> {
  let summary = "output projection to vocabulary logits";
  let description = [{
    logits = x * weight^T with a `[vocab, hidden]` float, Q8_0 or ternary
    weight (the token embedding when embeddings are tied). No activation
    quantization for float weights.

    ```mlir
    %logits = tern.lm_head %h {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>}
        : tensor<?x256xf32> -> tensor<?x356xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input, Tern_WeightAttr:$weight,
                   OptionalAttr<Tern_KernelAttr>:$kernel,
                   OptionalAttr<Tern_PackedAttr>:$packed);
  let results = (outs Tern_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused / decomposed forms (tern-fuse)
//===----------------------------------------------------------------------===//

def Tern_QuantizeOp : Tern_Op<"quantize", [Pure]> {
  let summary = "per-token absmax int8 activation quantization";
  let description = [{
    s[t] = 127 / max(|x[t]|, 1e-5), q[t] = clamp(round(x[t] * s[t]), -128, 127).

    ```mlir
    %q, %s = tern.quantize %x : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input);
  let results = (outs Tern_QActivation:$quantized, Tern_TokenScales:$scales);
  let assemblyFormat =
      "$input attr-dict `:` type($input) `->` type($quantized) `,` type($scales)";
  let hasVerifier = 1;
}

def Tern_RmsNormQuantizeOp : Tern_Op<"rms_norm_quantize", [Pure]> {
  let summary = "RMSNorm fused with per-token int8 activation quantization";
  let description = [{
    tern.rms_norm followed by tern.quantize in one pass over the row: the
    normalised activations never go to memory as f32.

    ```mlir
    %q, %s = tern.rms_norm_quantize %x {eps = 9.99999974e-06 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>}
        : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
    ```
  }];
  let arguments = (ins Tern_Activation:$input, Tern_WeightAttr:$weight,
                   F32Attr:$eps);
  let results = (outs Tern_QActivation:$quantized, Tern_TokenScales:$scales);
  let assemblyFormat =
      "$input attr-dict `:` type($input) `->` type($quantized) `,` type($scales)";
  let hasVerifier = 1;
}

def Tern_TernaryMatmulOp : Tern_Op<"ternary_matmul", [Pure]> {
  let summary = "ternary matmul of pre-quantized activations, one or more weights";
  let description = [{
    The integer half of one or more BitLinear layers that share an input:
    the weights (all `[M_i, K]`) are treated as one `[sum M_i, K]` matrix
    (q/k/v, or gate/up) and result i holds the rows of weight i, each scaled
    by its own weight scale and by the per-token activation scale.

    ```mlir
    %g, %u = tern.ternary_matmul %q, %s {weights = [#tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>, #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>]}
        : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
    ```
  }];
  let arguments = (ins Tern_QActivation:$input, Tern_TokenScales:$scales,
                   Tern_WeightArrayAttr:$weights,
                   OptionalAttr<Tern_KernelAttr>:$kernel,
                   OptionalAttr<Tern_PackedAttr>:$packed,
                   OptionalAttr<Tern_KernelAttr>:$decode_kernel,
                   OptionalAttr<Tern_PackedAttr>:$decode_packed);
  let results = (outs Variadic<Tern_Activation>:$results);
  let assemblyFormat = [{
    $input `,` $scales attr-dict `:` type($input) `,` type($scales) `->`
    type($results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    // Rows of the concatenated matrix.
    int64_t getTotalRows();
  }];
}

//===----------------------------------------------------------------------===//
// Kernel level (tern-lower-to-kernels)
//===----------------------------------------------------------------------===//

def Tern_UKernelCallOp : Tern_Op<"ukernel_call",
    [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "call of a microkernel with static shapes and offsets";
  let description = [{
    What every graph op becomes before code generation: a call of the
    ukernel `callee` (one entry point per op kind, layout and ISA) whose
    shapes, tiles and weight offsets are all compile-time constants in
    `static_args`. Only the token count stays dynamic.

    ```mlir
    %y = tern.ukernel_call "tern_uk_matmul_i2s_avx2"(%q, %s)
        {static_args = {k = 256 : i64, m = 512 : i64, tile_k = 256 : i64, tile_m = 32 : i64, packed_offset = 0 : i64, packed_bytes = 32800 : i64}}
        : (tensor<?x256xi8>, tensor<?xf32>) -> tensor<?x512xf32>
    ```
  }];
  let arguments = (ins StrAttr:$callee, Variadic<AnyRankedTensor>:$args,
                   DictionaryAttr:$static_args);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $callee `(` $args `)` attr-dict `:` functional-type($args, $results)
  }];
  let hasVerifier = 1;
}

#endif // TERN_OPS_TD
