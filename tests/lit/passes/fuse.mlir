// Tests that tern-fuse fuses rms_norm with activation quantization and
// bitlinears sharing an input (q/k/v, gate/up) into one ternary_matmul,
// and leaves a norm alone when something else reads it.
// RUN: tern-opt %s -split-input-file --tern-fuse | FileCheck %s
// RUN: tern-opt %s -split-input-file --tern-fuse=matmuls=false | FileCheck %s --check-prefix=NOMM

// CHECK-LABEL: func.func @qkv
// CHECK: %[[Q:.*]], %[[S:.*]] = tern.rms_norm_quantize %arg0 {{.*}}"blk.0.attn_norm.weight"{{.*}} -> tensor<?x256xi8>, tensor<?xf32>
// CHECK-NEXT: %[[R:.*]]:3 = tern.ternary_matmul %[[Q]], %[[S]] {weights = [#tern.weight<"blk.0.attn_q.weight"{{.*}}>, #tern.weight<"blk.0.attn_k.weight"{{.*}}>, #tern.weight<"blk.0.attn_v.weight"{{.*}}>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>
// CHECK-NEXT: return %[[R]]#0, %[[R]]#1, %[[R]]#2
// CHECK-NOT: tern.bitlinear
// NOMM-LABEL: func.func @qkv
// NOMM: tern.rms_norm_quantize
// NOMM-COUNT-3: tern.ternary_matmul
func.func @qkv(%x: tensor<?x256xf32>) -> (tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>) {
  %n = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32>
  %q = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %k = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_k.weight", [128, 256], tq2_0, offset = 201216, bytes = 8448>} : tensor<?x256xf32> -> tensor<?x128xf32>
  %v = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_v.weight", [128, 256], tq2_0, offset = 209664, bytes = 8448>} : tensor<?x256xf32> -> tensor<?x128xf32>
  return %q, %k, %v : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>
}

// -----

// The norm result is also returned: it stays, and a plain quantize feeds
// the fused gate/up matmul.
// CHECK-LABEL: func.func @gate_up
// CHECK: %[[N:.*]] = tern.rms_norm
// CHECK-NEXT: %[[Q:.*]], %[[S:.*]] = tern.quantize %[[N]]
// CHECK-NEXT: %[[R:.*]]:2 = tern.ternary_matmul %[[Q]], %[[S]] {weights = [#tern.weight<"blk.0.ffn_gate.weight"{{.*}}>, #tern.weight<"blk.0.ffn_up.weight"{{.*}}>]}
// CHECK-NEXT: tern.relu2_mul %[[R]]#0, %[[R]]#1
func.func @gate_up(%x: tensor<?x256xf32>) -> (tensor<?x512xf32>, tensor<?x256xf32>) {
  %n = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.ffn_norm.weight", [256], f32, offset = 236032, bytes = 1024>} : tensor<?x256xf32>
  %g = tern.bitlinear %n {weight = #tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x512xf32>
  %u = tern.bitlinear %n {weight = #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x512xf32>
  %h = tern.relu2_mul %g, %u : tensor<?x512xf32>
  return %h, %n : tensor<?x512xf32>, tensor<?x256xf32>
}

// -----

// Weights of different storage formats are not fused into one matmul.
// CHECK-LABEL: func.func @mixed
// CHECK: tern.rms_norm_quantize
// CHECK: tern.ternary_matmul {{.*}}"blk.0.ffn_gate.weight"
// CHECK: tern.ternary_matmul {{.*}}"blk.0.ffn_up.weight"
func.func @mixed(%x: tensor<?x256xf32>) -> (tensor<?x512xf32>, tensor<?x512xf32>) {
  %n = tern.rms_norm %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.ffn_norm.weight", [256], f32, offset = 236032, bytes = 1024>} : tensor<?x256xf32>
  %g = tern.bitlinear %n {weight = #tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>} : tensor<?x256xf32> -> tensor<?x512xf32>
  %u = tern.bitlinear %n {weight = #tern.weight<"blk.0.ffn_up.weight", [512, 256], i2_s, offset = 0, bytes = 32800>} : tensor<?x256xf32> -> tensor<?x512xf32>
  return %g, %u : tensor<?x512xf32>, tensor<?x512xf32>
}
