// Tests that tern-verify-quant-mapping accepts weights that match the
// source GGUF and attaches an error to the op for every mismatch.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-verify-quant-mapping=source=%fixtures/models/tiny-bitnet-tq2.gguf

// A correct reference passes untouched.
func.func @ok(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {
  %n = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32>
  %y = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

func.func @format(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.0.attn_q.weight' is recorded as tq1_0 but the file holds TQ2_0}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq1_0, offset = 184320, bytes = 13824>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @offset(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.0.attn_q.weight' is at offset 0 (16896 bytes) in the IR but at offset 184320 (16896 bytes) in the file}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @shape(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.0.attn_k.weight' shape differs from the file's (GGUF dims reversed: [128, 256])}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_k.weight", [256, 256], tq2_0, offset = 201216, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @missing(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.7.attn_q.weight' is not a tensor of}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.7.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @role(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.0.attn_norm.weight' has role norm, but this op needs a ternary projection (attn_q/k/v/output, ffn_gate/up/down)}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_norm.weight", [1, 256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x1xf32>
  return
}

// -----

func.func @norm_role(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.rms_norm' op weight 'blk.0.attn_q.weight' has role attn_q, but this op needs a norm weight}}
  %n = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_q.weight", [256], f32, offset = 0, bytes = 1024>} : tensor<?x256xf32>
  return
}

// -----

func.func @embed_role(%t: tensor<?xi32>) {
  // expected-error @+1 {{'tern.embed' op weight 'output_norm.weight' has role norm, but this op needs a token embedding}}
  %h = tern.embed %t {weight = #tern.weight<"output_norm.weight", [1, 256], f32, offset = 182272, bytes = 1024>} : tensor<?xi32> -> tensor<?x256xf32>
  return
}

// -----

func.func @head_role(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.lm_head' op weight 'blk.0.ffn_up.weight' has role ffn_up, but this op needs an output projection (output or token_embd)}}
  %l = tern.lm_head %x {weight = #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x512xf32>
  return
}

// -----

func.func @fused(%q: tensor<?x256xi8>, %s: tensor<?xf32>) {
  // expected-error @+1 {{'tern.ternary_matmul' op weight 'blk.0.ffn_up.weight' is at offset 0 (33792 bytes) in the IR but at offset 270848 (33792 bytes) in the file}}
  %g, %u = tern.ternary_matmul %q, %s {weights = [#tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>, #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 0, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
  return
}
