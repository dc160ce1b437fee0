//===- Passes.td - tern passes -----------------------------*- tablegen -*-===//
//
// The tern pipeline, in the order buildTernPipeline runs it:
//   tern-verify-quant-mapping -> tern-fuse -> tern-select-kernels
//   -> tern-pack-weights -> tern-lower-to-kernels -> tern-lower-to-llvm
// (then compiler/codegen: LLVM IR + ukernel bitcode -> object -> .so).
// Fusion runs before kernel selection so that a fused matrix ([sum M, K]:
// q/k/v, gate/up) gets one kernel chosen for its real shape.
//
//===----------------------------------------------------------------------===//

#ifndef TERN_PASSES_TD
#define TERN_PASSES_TD

include "mlir/Pass/PassBase.td"

def VerifyQuantMappingPass : Pass<"tern-verify-quant-mapping", "mlir::ModuleOp"> {
  let summary = "check every weight's storage format against its role and the source file";
  let description = [{
    Expects: graph-level tern IR whose weights name tensors of the module's
    `tern.source` GGUF (or of `source=`). Guarantees: every weight's
    recorded format, shape, offset and size agree with what the foundation
    quant-mapping verifier (runtime/formats/mapping.h) resolves for that
    tensor, and the format fits the op's role (ternary matrices in bitlinear,
    f32 vectors in norms, ...). Refusals are errors attached to the op.
    Without a source file only the role checks run.
  }];
  let options = [
    Option<"source", "source", "std::string", /*default=*/"\"\"",
           "GGUF file to check against (default: the module's tern.source)">,
    Option<"requireSource", "require-source", "bool", /*default=*/"false",
           "fail when no source file is known">,
  ];
}

def FusePass : Pass<"tern-fuse", "mlir::ModuleOp"> {
  let summary = "fuse rms_norm + activation quantization, q/k/v and gate/up matmuls";
  let description = [{
    Rewrites bitlinear ops into tern.quantize (or tern.rms_norm_quantize when
    the input comes from an rms_norm whose only users are bitlinears) and
    tern.ternary_matmul; bitlinears that read the same value with weights of
    the same storage format and K become one ternary_matmul with several
    weights (q/k/v as one matmul, gate/up as one matmul).
    Expects: no kernel or packed attributes yet (run before selection).
  }];
  let options = [
    Option<"fuseNorm", "norm-quant", "bool", "true", "fuse rms_norm with activation quantization">,
    Option<"fuseMatmuls", "matmuls", "bool", "true", "fuse bitlinears sharing an input">,
  ];
  let dependentDialects = ["::tern::ir::TernDialect"];
}

def SelectKernelsPass : Pass<"tern-select-kernels", "mlir::ModuleOp"> {
  let summary = "choose a kernel layout and tiles per matrix for a target";
  let description = [{
    For every bitlinear, ternary_matmul and lm_head, asks the target's cost
    model (compiler/target/TargetInfo.h: measured rates per layout and
    act-quant, docs/cost-model.md) for the cheapest (layout, tile_m, tile_k)
    for the matrix's shape, the activations `act-quant` gives and the
    artifact's `max-batch`, and sets `kernel = #tern.kernel<...>`.
    `kernel=` forces a layout (optionally tiles: `i2s:32x256`); a layout the
    target has no kernel for, or a tile its kernels cannot run, is an error.
    `explain` emits a remark per matrix: the kernel variant that will run,
    its rates, the estimate of the winner and of the best other layout.
    `head=q8` gives a float lm_head the q8 layout (int8 rows, one f32 scale
    per row, requantized by tern-pack-weights) instead of its exact float
    one; the choice is recorded as the module's `tern.head`.
    `tuning=FILE` (written by `ternc tune`) replaces the built-in rates of
    the layouts it measured; the module records which table chose each
    matrix (`tern.cost_table`, `tern.kernel_sources`).
    `decode-layout=tl2v` also gives every ternary matrix whose layout is not
    tl2v a `decode_kernel = #tern.kernel<tl2v, ...>`: the matrix is packed
    twice and calls of fewer than `tern.decode_below` tokens (a module
    attribute; `decode-below=`, else the built-in threshold) read the tl2v
    copy. A target without a fast tl2v kernel, or act-quant=none, is an error.
  }];
  let options = [
    Option<"target", "target", "std::string", "\"avx2\"",
           "avx2 | avx512_vnni | neon | neon_dotprod | neon_i8mm | cuda">,
    Option<"kernel", "kernel", "std::string", "\"auto\"",
           "auto, or a layout (i2s, tl1, tl2, tl2v, tq2, tq1) with optional tiles (i2s:32x256)">,
    Option<"explain", "explain", "bool", "false", "emit a remark explaining each choice">,
    Option<"actQuant", "act-quant", "std::string", "\"token\"",
           "token (int8 per-token activations) | none (f32 activations)">,
    Option<"maxBatch", "max-batch", "int64_t", "512",
           "most tokens one forward call takes (1: decode alone decides)">,
    Option<"head", "head", "std::string", "\"f16\"",
           "f16 (the float LM head as stored, exact) | q8 (int8 rows, f32 scale per row)">,
    Option<"tuning", "tuning", "std::string", "\"\"",
           "tuning file from `ternc tune`: measured rates replace the built-in table">,
    Option<"decodeLayout", "decode-layout", "std::string", "\"none\"",
           "none | tl2v: also pack every ternary matrix in this layout for small batches">,
    Option<"decodeBelow", "decode-below", "int64_t", "0",
           "batches of fewer tokens read the decode layout (0: the built-in threshold)">,
  ];
}

def PackWeightsPass : Pass<"tern-pack-weights", "mlir::ModuleOp"> {
  let summary = "repack every weight into its chosen kernel layout at compile time";
  let description = [{
    Expects: kernel attributes on every matrix op and a readable source GGUF.
    Gives every matrix its place in the packed-weight blob (program order,
    64-byte aligned; sizes follow from the shapes), then, in parallel on the
    context's thread pool, decodes each weight with the reference unpackers
    (runtime/formats), repacks it into the kernel's layout
    (compiler/pack/Pack.h) and writes it at its offset: to ternc's sink (the
    artifact's weights section) or to `out=`. Sets
    `packed = #tern.packed<layout, offset, bytes, checksum>` with checksum
    the XXH3-64 of the packed bytes. `verify=1` also checks
    unpack(pack(w)) == w for every matrix (the pack tests check every layout
    in both directions, so ternc does not pay for it by default).
  }];
  let options = [
    Option<"source", "source", "std::string", "\"\"",
           "GGUF file to read (default: the module's tern.source)">,
    Option<"out", "out", "std::string", "\"\"", "write the packed-weight blob here">,
    Option<"verifyRoundTrip", "verify", "bool", "false", "check unpack(pack(w)) == w">,
  ];
}

def LowerToKernelsPass : Pass<"tern-lower-to-kernels", "mlir::ModuleOp"> {
  let summary = "lower tern graph ops to ukernel calls with static shapes and offsets";
  let description = [{
    Every graph-level op becomes a tern.ukernel_call whose callee names the
    op, layout and ISA and whose static arguments hold every shape, tile and
    weight offset. A conversion target makes every other tern op illegal:
    an op that cannot be lowered (no kernel chosen, not packed) is an error.
    `kv-type` picks the attention ukernel's cache type (f16: K/V stored as
    IEEE halves; f32) and is recorded as the module's `tern.kv_type`, which
    the artifact's metadata carries (`kv_type`) for the runtime to size its
    KV pool by.
  }];
  let options = [
    Option<"requirePacked", "require-packed", "bool", "true",
           "refuse matrices without a packed attribute">,
    Option<"actQuant", "act-quant", "std::string", "\"token\"",
           "token (int8 per-token activations) | none (f32act matmuls; run without tern-fuse)">,
    Option<"refKernels", "ref", "bool", "false", "call the scalar `_ref` ukernel everywhere">,
    Option<"kvType", "kv-type", "std::string", "\"f16\"",
           "the KV cache's element type: f16 (tern_uk_attention_gqa_f16_*) | f32">,
  ];
}

def LowerToLLVMPass : Pass<"tern-lower-to-llvm", "mlir::ModuleOp"> {
  let summary = "lower func @forward of ukernel calls to the ABI entry points in the LLVM dialect";
  let description = [{
    Expects: kernel-level IR (tern-lower-to-kernels): one func @forward whose
    body is tern.ukernel_call ops and a return of the lm_head's logits.
    Guarantees: an LLVM-dialect module with
      i32 tern_model_forward(ptr ctx, ptr batch)   (tern_abi.h v2: tern_batch)
      ptr tern_model_describe()   (returns the constant @tern_model_desc)
    and external declarations of every ukernel called (runtime/ukernels).
    Weights section: the packed blob (tern.packed_bytes) at offset 0, then
    every non-packed tensor a call reads (norms, the embedding table) at
    64-byte aligned offsets, in order of first use; the layout is recorded
    as `tern.weights` (an array of dictionaries: name, source_offset, bytes, offset) and
    `tern.weights_bytes`. Scratch: every activation value gets a slot of
    width * element-bytes (rounded up to 64) per token, reused by liveness;
    slot i starts at ctx->scratch + n * (sum of the per-token widths of
    slots before i). The batch's fields are checked first (n, n_out, every
    position, sequence id and output row), returning 1 when one is out of
    range. Attention calls also get the batch's per-token sequence ids. The
    final norm (when the lm_head is its only user) and the lm_head run last,
    on the batch's n_out output rows only, gathered into one more slot.
  }];
  let options = [
    Option<"maxBatch", "max-batch", "int64_t", "512", "most tokens one forward call takes">,
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // TERN_PASSES_TD
