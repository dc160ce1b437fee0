// Tests that tern-verify-quant-mapping and tern-pack-weights read the
// module's tern.i2s_layout with the one I2_S layout parser: canonical names
// and the short aliases pass, anything else is an error naming the attribute.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-verify-quant-mapping=source=%fixtures/models/tiny-bitnet-tq2.gguf
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-pack-weights=source=%fixtures/models/tiny-bitnet-tq2.gguf

module attributes {tern.i2s_layout = "arm-qk64"} {
  func.func @canonical() { return }
}

// -----

module attributes {tern.i2s_layout = "x86"} {
  func.func @alias() { return }
}

// -----

// expected-error @+1 {{tern.i2s_layout: 'sideways' is not one of x86-qk128 (alias x86), arm-qk64 (alias arm), x86-1x4}}
module attributes {tern.i2s_layout = "sideways"} {
  func.func @unknown() { return }
}
