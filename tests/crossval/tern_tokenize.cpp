// tern-tokenize VOCAB.gguf: reads one JSON string per line on stdin, prints
// one JSON array of token ids per line (encode(text, addSpecial=false)).
// Used by crossval.mjs to compare our tokenizer with llama.cpp's in batch.
#include <iostream>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/gguf/gguf.h"
#include "runtime/tokenizer/tokenizer.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: tern-tokenize VOCAB.gguf < strings.jsonl\n";
    return 2;
  }
  auto file = tern::gguf::File::open(argv[1]);
  if (!file.ok()) {
    std::cerr << "tern-tokenize: " << file.status() << "\n";
    return 1;
  }
  auto tok = tern::tokenizer::Tokenizer::fromGGUF(**file);
  if (!tok.ok()) {
    std::cerr << "tern-tokenize: " << tok.status() << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty())
      continue;
    std::string text = nlohmann::json::parse(line).get<std::string>();
    nlohmann::json ids = tok->encode(text, /*addSpecial=*/false);
    std::cout << ids.dump() << "\n";
  }
  return 0;
}
