#pragma once
// customsd with enforcement, in-process, for the enforce_* tests: the fake
// provider, a config built in code (routes per dialect to US and CN), the rule
// packs of rules/ plus the small test packs of tests/daemon/enforce_rules/, a
// real audit trail in a temporary folder with keys made for the test, and
// helpers to read that trail back and to reassemble streamed text per dialect.

#include "harness.hpp"

#include "audit/reader.hpp"
#include "audit/verifier.hpp"
#include "crypto/key_file.hpp"
#include "daemon/enforce/enforcer.hpp"
#include "daemon/enforce/kept_texts.hpp"
#include "daemon/enforce/payload_json.hpp"
#include "tests/support/fake_provider.hpp"
#include "daemon/sse.hpp"
#include "tests/support/test_certs.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace customs::testing::enforce {

namespace fs = std::filesystem;
namespace json = boost::json;
using customs::daemon::dialect;

inline fs::path shipped_rules() { return fs::path(CUSTOMS_SOURCE_DIR) / "rules"; }
inline fs::path test_rules(const std::string& name) {
  return fs::path(CUSTOMS_SOURCE_DIR) / "tests" / "daemon" / "enforce_rules" / name;
}

// Keys and a database path in a fresh folder.
struct trail_files {
  explicit trail_files(const fs::path& dir) : keys(dir / "keys"), db(dir / "audit.db") {
    (void)crypto::generate_key_set(keys);
  }
  fs::path keys;
  fs::path db;
};

inline daemon::audit_config audit_settings(const trail_files& t, daemon::audit_content content) {
  daemon::audit_config a;
  a.path = t.db;
  a.auditor_keys = {t.keys / "auditor.pub"};
  a.sealing_key = t.keys / "sealing.key";
  a.signing_key = t.keys / "signing.key";
  a.content = content;
  a.commit_interval = std::chrono::milliseconds(0);
  return a;
}

// Routes /<dialect>-us/ (jurisdiction US) and /<dialect>-cn/ (CN) for each
// dialect, all to the fake provider.
inline std::vector<daemon::route_config> routes_to(std::uint16_t port) {
  std::vector<daemon::route_config> r;
  const std::string up = "http://127.0.0.1:" + std::to_string(port);
  for (const auto& [name, d] : {std::pair{"openai", dialect::openai}, std::pair{"anthropic", dialect::anthropic},
                                std::pair{"gemini", dialect::gemini}}) {
    auto us = make_route(std::string("/") + name + "-us/", up, d);
    us.jurisdiction = "US";
    auto cn = make_route(std::string("/") + name + "-cn/", up, d);
    cn.jurisdiction = "CN";
    r.push_back(us);
    r.push_back(cn);
  }
  return r;
}

// A config enforcing the shipped packs plus the response test pack, every
// client CN by default.
inline daemon::config enforcing_config(const trail_files& t, std::uint16_t provider_port,
                                       daemon::audit_content content = daemon::audit_content::full) {
  auto c = test_config(routes_to(provider_port));
  c.listeners[0].default_source = daemon::source_spec{"CN", "demo"};
  c.rules = {shipped_rules(), test_rules("responses.yaml")};
  c.audit = audit_settings(t, content);
  c.threads = 1;
  return c;
}

// An enforcing customsd in-process.
class enforced_server {
 public:
  explicit enforced_server(daemon::config c)
      : enf_((daemon::set_log_level(c.log.level), std::make_unique<daemon::enforce::enforcer>(c))),
        srv_(std::make_unique<daemon::server>(std::move(c), enf_->server_options())) {
    enf_->install(*srv_);
    srv_->start();
  }
  ~enforced_server() { stop(); }
  void stop() {
    if (!srv_) return;
    srv_->stop();
    srv_->wait();
    srv_.reset();
    enf_->close();
  }
  [[nodiscard]] std::uint16_t port() const { return srv_->port("edge"); }
  [[nodiscard]] std::uint16_t admin_port() const { return srv_->admin_port(); }
  [[nodiscard]] daemon::server& server() { return *srv_; }
  [[nodiscard]] daemon::enforce::enforcer& enforcer() { return *enf_; }

 private:
  std::unique_ptr<daemon::enforce::enforcer> enf_;
  std::unique_ptr<daemon::server> srv_;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

// A client request; the response read whole (de-chunked).
inline http_response post(std::uint16_t port, const std::string& target, const std::string& body,
                          const header_list& headers = {}) {
  http_client c(port);
  header_list h = headers;
  h.emplace_back("Content-Type", "application/json");
  return c.request("POST", target, body, h);
}

struct sse_item {
  std::string event;
  std::string data;
};

// The events of a complete event stream (customsd's own SSE parser, which
// follows the WHATWG format and has its own tests); `rest` gets bytes after the
// last complete event.
inline std::vector<sse_item> parse_sse(std::string_view body, std::string* rest) {
  customs::daemon::sse_parser p(1 << 24);
  std::vector<sse_item> out;
  std::size_t pending = 0;
  while (!body.empty()) {
    const auto r = p.feed(body);
    body.remove_prefix(r.consumed);
    if (r.what == customs::daemon::sse_parser::status::event) {
      if (p.event().has_data) out.push_back({std::string(p.event().event), std::string(p.event().data)});
      pending = 0;
    } else {
      pending += r.consumed;
    }
  }
  if (rest) *rest = p.pending_bytes() > 0 ? std::string(p.pending_bytes(), '?') : std::string();
  (void)pending;
  return out;
}

// The request bodies of each dialect asking for `prompt`.
inline std::string chat_body(const std::string& prompt, bool stream) {
  json::object b{{"model", "gpt-test"}, {"stream", stream},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  return json::serialize(b);
}
inline std::string anthropic_body(const std::string& prompt, bool stream) {
  json::object b{{"model", "claude-test"}, {"max_tokens", 100}, {"stream", stream},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  return json::serialize(b);
}
inline std::string gemini_body(const std::string& prompt) {
  json::object b{{"contents", json::array{json::object{
                                  {"role", "user"}, {"parts", json::array{json::object{{"text", prompt}}}}}}}};
  return json::serialize(b);
}
inline std::string responses_body(const std::string& prompt, bool stream) {
  json::object b{{"model", "gpt-test"}, {"stream", stream}, {"input", prompt}};
  return json::serialize(b);
}

// One way to talk to a dialect: target and body for a prompt.
struct api_call {
  std::string name;
  dialect api;
  std::string prefix;  // route name without the jurisdiction suffix: "openai", ...
  std::string path;    // after the route prefix
  std::string (*body)(const std::string& prompt, bool stream);
  [[nodiscard]] std::string target(const std::string& jurisdiction, bool stream) const {
    std::string p = path;
    if (api == dialect::gemini) {
      p = stream ? "v1beta/models/gemini-test:streamGenerateContent?alt=sse" : "v1beta/models/gemini-test:generateContent";
    }
    return "/" + prefix + "-" + jurisdiction + "/" + p;
  }
};

inline std::string gemini_any(const std::string& prompt, bool) { return gemini_body(prompt); }

inline std::vector<api_call> all_apis() {
  return {
      {"openai chat", dialect::openai, "openai", "v1/chat/completions", &chat_body},
      {"anthropic messages", dialect::anthropic, "anthropic", "v1/messages", &anthropic_body},
      {"gemini", dialect::gemini, "gemini", "", &gemini_any},
      {"openai responses", dialect::openai, "openai", "v1/responses", &responses_body},
  };
}

// The text a client reassembles from a streamed answer, per dialect, checking
// that every event's data is JSON of the dialect's shape; `ended` is whether the
// dialect's normal end marker came, `error` the error event's body if any.
struct client_view {
  std::string text;
  bool ended = false;
  std::string error;  // data of an error event
  std::size_t events = 0;
};

inline client_view reassemble(const api_call& api, const std::string& body) {
  client_view v;
  std::string rest;
  const auto events = parse_sse(body, &rest);
  INFO("stream: " << body);
  CHECK(rest.empty());
  for (const auto& e : events) {
    ++v.events;
    if (e.data == "[DONE]") {
      v.ended = true;
      continue;
    }
    json::error_code ec;
    const auto d = json::parse(e.data, ec);
    INFO("event data: " << e.data);
    REQUIRE_FALSE(ec);
    REQUIRE(d.is_object());
    const auto& o = d.as_object();
    if (o.contains("error") || e.event == "error") {
      v.error = e.data;
      continue;
    }
    if (api.name == "openai chat") {
      for (const auto& c : o.at("choices").as_array()) {
        const auto& delta = c.as_object().at("delta").as_object();
        if (auto* t = delta.if_contains("content"); t && t->is_string()) v.text += t->as_string().c_str();
      }
    } else if (api.name == "anthropic messages") {
      const auto type = std::string(o.at("type").as_string());
      if (type == "message_stop") v.ended = true;
      if (type == "content_block_delta") {
        const auto& delta = o.at("delta").as_object();
        if (auto* t = delta.if_contains("text")) v.text += t->as_string().c_str();
      }
    } else if (api.name == "gemini") {
      for (const auto& c : o.at("candidates").as_array()) {
        const auto& co = c.as_object();
        if (co.contains("finishReason")) v.ended = true;
        if (!co.contains("content")) continue;
        for (const auto& p : co.at("content").as_object().at("parts").as_array()) {
          if (auto* t = p.as_object().if_contains("text")) v.text += t->as_string().c_str();
        }
      }
    } else {
      const auto type = std::string(o.at("type").as_string());
      if (type == "response.completed") v.ended = true;
      if (type == "response.output_text.delta") v.text += o.at("delta").as_string().c_str();
    }
  }
  return v;
}

// The records of one flow (polling until `n` are committed, at most 5 s).
struct flow_record {
  audit::record_kind kind;
  audit::index_fields index;
  json::object payload;
};

inline std::vector<flow_record> flow_records(const trail_files& t, const std::string& flow, std::size_t n = 2) {
  std::vector<flow_record> out;
  const auto key = crypto::load_auditor_secret(t.keys / "auditor.key");
  for (int i = 0; i < 250; ++i) {
    out.clear();
    audit::reader r(t.db);
    r.set_auditor_key(key);
    audit::record_filter f;
    f.flow = flow;
    r.for_each(f, [&](const audit::read_record& rec) {
      flow_record fr{rec.kind, rec.index, {}};
      if (rec.payload) fr.payload = json::parse(*rec.payload).as_object();
      out.push_back(std::move(fr));
      return true;
    });
    if (out.size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

// The whole trail verifies (chain, MACs from the seed, signatures).
inline audit::verify_summary verify_trail(const trail_files& t) {
  const auto seed = crypto::load_sealing_seed(t.keys / "sealing.seed");
  audit::verify_options o;
  o.seed = &seed;
  o.signer = crypto::load_signing_public(t.keys / "signing.pub");
  o.max_failures = 5;
  return audit::verify(t.db, o);
}

inline std::string customsctl_path() { return std::string(CUSTOMS_BINARY_DIR) + "/tools/customsctl"; }

// What a kept_texts writes into a record's payload (write_texts(),
// write_markers()), parsed: the arrays an auditor reads.
inline json::array written_texts(const daemon::enforce::kept_texts& k) {
  std::string text;
  daemon::enforce::json_out out(text);
  k.write_texts(out);
  return json::parse(text).as_array();
}
inline json::array written_markers(daemon::enforce::kept_texts& k) {
  std::string text;
  daemon::enforce::json_out out(text);
  k.write_markers(out);
  return json::parse(text).as_array();
}

}  // namespace customs::testing::enforce
