// Tests that tern-verify-quant-mapping attaches the mapping verifier's
// refusal to the op when the file holds a weight ternc refuses: here a float
// attn_q whose values are not {-s, 0, +s} (never reinterpreted as ternary).
// RUN: %python %S/../compile/Inputs/mkgguf.py non-ternary %t.gguf
// RUN: tern-opt %s -verify-diagnostics --tern-verify-quant-mapping=source=%t.gguf

func.func @refused(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {
  // expected-error @+1 {{'tern.bitlinear' op quant mapping refuses 'blk.0.attn_q.weight': F32 in a ternary role but not ternary: F32: element 1 (row 0, col 1) is -0.002, expected 0 or ±0.003}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], f32, offset = 10240, bytes = 262144>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
