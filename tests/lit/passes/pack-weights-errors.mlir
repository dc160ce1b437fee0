// Tests that tern-pack-weights needs a kernel on every matrix and a source.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-pack-weights

module attributes {tern.source = "%fixtures/models/tiny-bitnet-tq2.gguf"} {
// expected-error @-1 {{cannot read source GGUF}}
}

// -----

// expected-error @+1 {{tern-pack-weights needs the source GGUF (tern.source or source=)}}
module {
  func.func @f(%x: tensor<?x256xf32>) {
    %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
    return
  }
}
