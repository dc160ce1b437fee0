//===- TernBase.td - the tern dialect and its attributes ---*- tablegen -*-===//
//
// The `tern` dialect describes a ternary (BitNet b1.58) language model at
// graph level: embeddings, RMSNorm, BitLinear matmuls, RoPE, attention over
// a KV cache, gated FFNs and the LM head. Weights are never embedded in the
// IR: every weight is a `#tern.weight` attribute naming a tensor of the
// source GGUF (name, logical shape, storage format, byte offset and size).
//
// Activation convention: every activation is a rank-2 `tensor<?xNxf32>`
// (dynamic number of tokens, static feature width). Token ids and positions
// are `tensor<?xi32>`. Shapes of weights are written row-major, outer
// dimension first: a matrix with M outputs and K inputs is `[M, K]` (GGUF
// stores the same tensor with dims `[K, M]`, ne0 first).
//
//===----------------------------------------------------------------------===//

#ifndef TERN_BASE_TD
#define TERN_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Tern_Dialect : Dialect {
  let name = "tern";
  let cppNamespace = "::tern::ir";
  let summary = "Graph-level IR of ternary (BitNet b1.58) language models";
  let description = [{
    Ops of a BitNet b1.58 forward pass. Weights are referenced, not copied:
    `#tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320,
    bytes = 16896>` names a tensor of the GGUF recorded in the module's
    `tern.source` attribute. Passes attach their decisions as attributes:
    `kernel = #tern.kernel<...>` (tern-select-kernels) and
    `packed = #tern.packed<...>` (tern-pack-weights).
  }];
  let useDefaultAttributePrinterParser = 1;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Tern_WeightFormat : I32EnumAttr<"WeightFormat",
    "storage format of a weight tensor in the source file", [
  I32EnumAttrCase<"F32",   0, "f32">,
  I32EnumAttrCase<"F16",   1, "f16">,
  I32EnumAttrCase<"BF16",  2, "bf16">,
  I32EnumAttrCase<"Q8_0",  3, "q8_0">,
  I32EnumAttrCase<"TQ1_0", 4, "tq1_0">,
  I32EnumAttrCase<"TQ2_0", 5, "tq2_0">,
  I32EnumAttrCase<"I2_S",  6, "i2_s">,
  I32EnumAttrCase<"TL1",   7, "tl1">,
  I32EnumAttrCase<"TL2",   8, "tl2">
]> {
  let cppNamespace = "::tern::ir";
  let genSpecializedAttr = 0;
}

def Tern_KernelLayout : I32EnumAttr<"KernelLayout",
    "packed weight layout a kernel reads", [
  // 2-bit codes, I2_S style (bitnet.cpp MAD kernel), interleaved by tile_m rows.
  I32EnumAttrCase<"I2S",  0, "i2s">,
  // 4-bit pair indices, 9-entry lookup table (ARM tbl).
  I32EnumAttrCase<"TL1",  1, "tl1">,
  // |triple| in 4 bits + sign bits, 16-entry lookup table (x86 pshufb).
  I32EnumAttrCase<"TL2",  2, "tl2">,
  // GGML TQ2_0 blocks (256 weights, f16 scale per block).
  I32EnumAttrCase<"TQ2",  3, "tq2">,
  // GGML TQ1_0 blocks (base-3, 1.69 bits per weight).
  I32EnumAttrCase<"TQ1",  4, "tq1">,
  // Dense float / int8 kernels for the non-ternary matrices (LM head).
  I32EnumAttrCase<"F16",  5, "f16">,
  I32EnumAttrCase<"F32",  6, "f32">,
  I32EnumAttrCase<"Q8_0", 7, "q8_0">,
  // int8 rows with one f32 scale per row, requantized at compile time from a
  // float LM head (ternc --head q8; runtime/formats/q8_rows.h).
  I32EnumAttrCase<"Q8",   8, "q8">,
  // |triple| in 4 bits + sign bits, rows contiguous, 64 triples per
  // 192-column group (1.67 bits per weight): vpshufb digit tables +
  // vpdpbusd (x86 AVX-512 VNNI, compiler/pack/Pack.h).
  I32EnumAttrCase<"TL2V", 9, "tl2v">
]> {
  let cppNamespace = "::tern::ir";
  let genSpecializedAttr = 0;
}

def Tern_Isa : I32EnumAttr<"Isa", "instruction set a kernel is chosen for", [
  I32EnumAttrCase<"AVX2",         0, "avx2">,
  I32EnumAttrCase<"AVX512VNNI",   1, "avx512_vnni">,
  I32EnumAttrCase<"NEON",         2, "neon">,
  I32EnumAttrCase<"NEONDotprod",  3, "neon_dotprod">,
  I32EnumAttrCase<"CUDA",         4, "cuda">,
  // NEON + dotprod + i8mm (smmla): the i2s GEMM's own ISA; its other ops
  // and LM heads are neon_dotprod's (TERN_UK_OPS_FROM in variants.def).
  I32EnumAttrCase<"NEONI8mm",     5, "neon_i8mm">
]> {
  let cppNamespace = "::tern::ir";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class Tern_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Tern_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Tern_WeightAttr : Tern_Attr<"Weight", "weight"> {
  let summary = "a weight tensor of the source GGUF, by reference";
  let description = [{
    Names a tensor of the source file; the data stays in the (memory-mapped)
    file. `shape` is row-major, outer dimension first (`[M, K]` for a matrix
    with M outputs), `offset` is relative to the GGUF data section and
    `bytes` is the tensor's size in its storage format.

    ```mlir
    #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>
    ```
  }];
  let parameters = (ins
    StringRefParameter<"GGUF tensor name">:$name,
    ArrayRefParameter<"int64_t", "row-major shape, outer first">:$shape,
    EnumParameter<Tern_WeightFormat>:$format,
    "uint64_t":$offset,
    "uint64_t":$bytes
  );
  let assemblyFormat = [{
    `<` $name `,` `[` $shape `]` `,` $format `,` `offset` `=` $offset `,`
    `bytes` `=` $bytes `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getRank() const { return getShape().size(); }
    // Number of rows (outputs) of a matrix, elements of a vector.
    int64_t getRows() const { return getShape().front(); }
    // Row length (inputs) of a matrix.
    int64_t getCols() const { return getShape().back(); }
  }];
}

def Tern_KernelAttr : Tern_Attr<"Kernel", "kernel"> {
  let summary = "the kernel chosen for one matrix";
  let description = [{
    Set by `tern-select-kernels`: the weight layout the kernel reads, the ISA
    it is specialised for, and its tiles (rows per tile, weights per tile
    along K). `tile_m` divides nothing in particular: tails are handled by
    the kernel, and `tern-pack-weights` pads the packed form.

    ```mlir
    #tern.kernel<tl2, avx2, tile_m = 32, tile_k = 192>
    ```
  }];
  let parameters = (ins
    EnumParameter<Tern_KernelLayout>:$layout,
    EnumParameter<Tern_Isa>:$isa,
    "int64_t":$tileM,
    "int64_t":$tileK
  );
  let assemblyFormat = [{
    `<` $layout `,` $isa `,` `tile_m` `=` $tileM `,` `tile_k` `=` $tileK `>`
  }];
  let genVerifyDecl = 1;
}

def Tern_PackedAttr : Tern_Attr<"Packed", "packed"> {
  let summary = "where a repacked weight lives in the packed-weight blob";
  let description = [{
    Set by `tern-pack-weights`: the weight has been repacked at compile time
    into `layout`; its bytes are at `offset` in the packed-weight blob (the
    artifact's weight section), `bytes` long, with the XXH3-64 of the bytes
    as `checksum` (runtime/support/hash.h).

    ```mlir
    #tern.packed<i2s, offset = 0, bytes = 16448, checksum = 1234567>
    ```
  }];
  let parameters = (ins
    EnumParameter<Tern_KernelLayout>:$layout,
    "uint64_t":$offset,
    "uint64_t":$bytes,
    "uint64_t":$checksum
  );
  let assemblyFormat = [{
    `<` $layout `,` `offset` `=` $offset `,` `bytes` `=` $bytes `,`
    `checksum` `=` $checksum `>`
  }];
}

#endif // TERN_BASE_TD
