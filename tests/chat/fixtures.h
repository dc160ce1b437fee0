// The fixture template strings (../shared/fixtures/chat-templates), shared by
// the chat tests.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "runtime/chat/chat.h"

namespace tern::chat::testing {

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The real template text of family `k`, as the fixtures hold it.
inline std::string fixtureTemplate(TemplateKind k) {
  const std::string dir = std::string(TERN_SHARED_DIR) + "/fixtures/chat-templates/";
  switch (k) {
  case TemplateKind::Bitnet:
    return readFile(dir + "bitnet-b1.58-2b4t.jinja");
  case TemplateKind::Llama3:
    return readFile(dir + "llama3.jinja");
  case TemplateKind::Chatml:
    return readFile(dir + "chatml.jinja");
  }
  return "";
}

} // namespace tern::chat::testing
