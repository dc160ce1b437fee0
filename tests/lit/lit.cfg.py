# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "TERN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.tern_obj_root
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py.in", "Inputs"]

# %fixtures: ../shared/fixtures (read-only models made outside the project).
config.substitutions.append(("%fixtures", os.path.join(config.tern_shared_dir, "fixtures")))

llvm_config.use_default_substitutions()
tools = ["tern-opt", "ternc", "tern-synth", "tern-pack-check"]
llvm_config.add_tool_substitutions(
    [t for t in tools if os.path.exists(os.path.join(config.tern_tools_dir, t))],
    [config.tern_tools_dir])
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.tern_tools_dir, append_path=True)

# Tests that generate models need the synthetic-model generator.
if os.path.exists(os.path.join(config.tern_tools_dir, "tern-synth")):
    config.available_features.add("tern-synth")

# Code generation tests link the ukernel bitcode (target tern_ukernels_bc).
if config.tern_ukernel_bc_dir and all(
        os.path.exists(os.path.join(config.tern_ukernel_bc_dir, "ukernels-%s.bc" % a))
        for a in ("x86_64", "aarch64")):
    config.available_features.add("ukernels-bc")

# The cuda targets' PTX (runtime/cuda, built with clang-22) and, where a CUDA
# toolkit is installed, its ptxas (%ptxas).
if config.tern_cuda_ptx_dir and all(
        os.path.exists(os.path.join(config.tern_cuda_ptx_dir, "tern-cuda-%s.ptx" % a))
        for a in ("sm_80", "sm_90")):
    config.available_features.add("cuda-ptx")
if config.tern_ptxas and os.path.exists(config.tern_ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.tern_ptxas))
