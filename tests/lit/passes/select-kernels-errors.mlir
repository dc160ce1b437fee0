// Tests that tern-select-kernels reports an unknown target, a bad kernel=,
// a layout the target cannot run and a TL source it cannot re-tile.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-select-kernels="target=neon kernel=tl2"

func.func @f(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op kernel tl2 is not available on target neon with act-quant token (available: tl1, i2s, tq2, tq1)}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @f(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op weight 'blk.0.attn_q.weight' is stored as tl1, whose tiling comes from the producing build's kernel_config; re-quantize it to I2_S or TQ2_0}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tl1, offset = 0, bytes = 16384>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}
