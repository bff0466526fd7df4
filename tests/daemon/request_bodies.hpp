#pragma once
// Generated request bodies per dialect for the coverage property tests (see
// json_gen.hpp): a valid conversation of random shape (strings or parts, text
// files as data: URLs or base64, tool calls with random arguments), with
// unknown fields at the top and inside messages and parts.

#include <string>

#include "daemon/dialect/dialect.hpp"
#include "tests/daemon/json_gen.hpp"

namespace customs::testing::gen {

inline std::string base64(std::string_view s) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(s[i]) << 16) | (static_cast<unsigned char>(s[i + 1]) << 8) |
                       static_cast<unsigned char>(s[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += digits[(n >> k) & 63];
  }
  if (const std::size_t rest = s.size() - i; rest > 0) {
    unsigned n = static_cast<unsigned char>(s[i]) << 16;
    if (rest == 2) n |= static_cast<unsigned char>(s[i + 1]) << 8;
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += rest == 2 ? digits[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

struct request_case {
  daemon::dialect api;
  std::string path;  // upstream path, query included
  node body;
};

inline object with_unknown(generator& g, object o) {
  g.sprinkle(o);
  return o;
}

inline node openai_chat(generator& g) {
  array messages;
  const std::size_t n = 1 + g.pick(4);
  for (std::size_t i = 0; i < n; ++i) {
    object m{{"role", g.chance(0.5) ? "user" : "assistant"}};
    if (g.chance(0.3)) m.emplace_back("name", g.text(10));
    if (g.chance(0.5)) {
      m.emplace_back("content", g.text());
    } else {
      array parts;
      const std::size_t k = 1 + g.pick(3);
      for (std::size_t j = 0; j < k; ++j) {
        switch (g.pick(3)) {
          case 0: parts.push_back(with_unknown(g, {{"type", "text"}, {"text", g.text()}})); break;
          case 1: {
            const std::string url = g.chance(0.5) ? "data:text/plain;base64," + base64(g.text()) : "https://x.test/" + g.text(6);
            parts.push_back(with_unknown(g, {{"type", "image_url"}, {"image_url", object{{"url", url}}}}));
            break;
          }
          default: parts.push_back(object{{"type", "refusal"}, {"refusal", g.text()}}); break;
        }
      }
      m.emplace_back("content", std::move(parts));
    }
    messages.push_back(with_unknown(g, std::move(m)));
  }
  object body{{"model", "gpt-test"}, {"messages", std::move(messages)}};
  if (g.chance(0.3)) body.emplace_back("user", g.text(12));
  if (g.chance(0.3)) body.emplace_back("stop", array{g.text(6), g.text(6)});
  if (g.chance(0.3)) body.emplace_back("metadata", object{{g.key(), g.text()}});
  return with_unknown(g, std::move(body));
}

inline node anthropic(generator& g) {
  array messages;
  const std::size_t n = 1 + g.pick(3);
  for (std::size_t i = 0; i < n; ++i) {
    object m{{"role", i % 2 == 0 ? "user" : "assistant"}};
    if (g.chance(0.4)) {
      m.emplace_back("content", g.text());
    } else {
      array blocks;
      const std::size_t k = 1 + g.pick(3);
      for (std::size_t j = 0; j < k; ++j) {
        switch (g.pick(3)) {
          case 0: blocks.push_back(with_unknown(g, {{"type", "text"}, {"text", g.text()}})); break;
          case 1:
            blocks.push_back(object{{"type", "document"},
                                    {"source", object{{"type", "base64"}, {"media_type", "text/plain"}, {"data", base64(g.text())}}}});
            break;
          default: {
            node input = g.value(2);
            if (input.as_object() == nullptr) input = object{{"arg", input}};
            blocks.push_back(object{{"type", "tool_use"}, {"id", "t" + std::to_string(j)}, {"name", "tool"}, {"input", input}});
          }
        }
      }
      m.emplace_back("content", std::move(blocks));
    }
    messages.push_back(with_unknown(g, std::move(m)));
  }
  object body{{"model", "claude-test"}, {"max_tokens", 100.0}, {"messages", std::move(messages)}};
  if (g.chance(0.5)) body.emplace_back("system", g.text());
  return with_unknown(g, std::move(body));
}

inline node gemini(generator& g) {
  array contents;
  const std::size_t n = 1 + g.pick(3);
  for (std::size_t i = 0; i < n; ++i) {
    array parts;
    const std::size_t k = 1 + g.pick(3);
    for (std::size_t j = 0; j < k; ++j) {
      switch (g.pick(3)) {
        case 0: parts.push_back(with_unknown(g, {{"text", g.text()}})); break;
        case 1: parts.push_back(object{{"inlineData", object{{"mimeType", "text/plain"}, {"data", base64(g.text())}}}}); break;
        default: {
          node args = g.value(2);
          if (args.as_object() == nullptr) args = object{{"a", args}};
          parts.push_back(object{{"functionCall", object{{"name", "f"}, {"args", args}}}});
        }
      }
    }
    contents.push_back(with_unknown(g, {{"role", i % 2 == 0 ? "user" : "model"}, {"parts", std::move(parts)}}));
  }
  object body{{"contents", std::move(contents)}};
  if (g.chance(0.4)) body.emplace_back("systemInstruction", object{{"parts", array{object{{"text", g.text()}}}}});
  return with_unknown(g, std::move(body));
}

inline node responses(generator& g) {
  if (g.chance(0.3)) return with_unknown(g, {{"model", "gpt-test"}, {"input", g.text()}});
  array items;
  const std::size_t n = 1 + g.pick(3);
  for (std::size_t i = 0; i < n; ++i) {
    if (g.chance(0.7)) {
      node content = g.chance(0.5) ? node(g.text()) : node(array{object{{"type", "input_text"}, {"text", g.text()}}});
      items.push_back(with_unknown(g, {{"role", "user"}, {"content", content}}));
    } else {
      items.push_back(object{{"type", "function_call"}, {"call_id", "c"}, {"name", "f"}, {"arguments", g.text()}});
    }
  }
  object body{{"model", "gpt-test"}, {"input", std::move(items)}};
  if (g.chance(0.4)) body.emplace_back("instructions", g.text());
  return with_unknown(g, std::move(body));
}

inline request_case any_request(generator& g) {
  switch (g.pick(4)) {
    case 0: return {daemon::dialect::openai, "/v1/chat/completions", openai_chat(g)};
    case 1: return {daemon::dialect::anthropic, "/v1/messages", anthropic(g)};
    case 2: return {daemon::dialect::gemini, "/v1beta/models/gemini-test:generateContent", gemini(g)};
    default: return {daemon::dialect::openai, "/v1/responses", responses(g)};
  }
}

}  // namespace customs::testing::gen
