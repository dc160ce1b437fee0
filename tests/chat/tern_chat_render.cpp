// The C++ side of the chat-oracle test: reads a JSON array of cases on stdin,
// renders each with the built-in template recognised from the case's template
// text, prints a JSON array of results on stdout.
//
//   in:  [{"template": TEXT, "bos_token": S, "eos_token": S,
//          "add_generation_prompt": B, "messages": [{"role": R, "content": S}...],
//          "split": K}, ...]
//   out: [{"name": NAME, "exact": B, "text": render(messages),
//          "prefix": render(messages[:K], agp=false),
//          "delta": renderDelta(messages[:K], messages[K:])} | {"error": MSG}, ...]
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "runtime/chat/chat.h"

using namespace tern::chat;

static nlohmann::json renderCase(const nlohmann::json &c) {
  auto rec = recognizeTemplate(c.at("template").get<std::string>());
  if (!rec.ok())
    return {{"error", std::string(rec.status().message())}};
  std::vector<Message> msgs;
  for (const auto &m : c.at("messages")) {
    auto role = parseRole(m.at("role").get<std::string>());
    if (!role.ok())
      return {{"error", std::string(role.status().message())}};
    msgs.push_back({*role, m.at("content").get<std::string>()});
  }
  RenderOptions o;
  o.bosToken = c.at("bos_token").get<std::string>();
  o.eosToken = c.at("eos_token").get<std::string>();
  o.addGenerationPrompt = c.at("add_generation_prompt").get<bool>();
  const size_t k = std::min(c.value("split", size_t(0)), msgs.size());
  std::span<const Message> all(msgs);
  RenderOptions noGen = o;
  noGen.addGenerationPrompt = false;
  return {{"name", std::string(templateName(rec->kind))},
          {"exact", rec->exact},
          {"text", render(rec->kind, all, o)},
          {"prefix", render(rec->kind, all.first(k), noGen)},
          {"delta", renderDelta(rec->kind, all.first(k), all.subspan(k), o)}};
}

int main() {
  try {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    nlohmann::json cases = nlohmann::json::parse(input);
    nlohmann::json out = nlohmann::json::array();
    for (const auto &c : cases)
      out.push_back(renderCase(c));
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tern-chat-render: %s\n", e.what());
    return 1;
  }
}
