// tern-synth: synthetic BitNet GGUF generator (the work is in synth.cpp).
#include "tools/tern-synth/synth.h"

int main(int argc, char **argv) { return tern::synth::runMain(argc, argv); }
