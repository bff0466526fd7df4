#include "daemon/volume/redis_protocol.hpp"

#include <hiredis/hiredis.h>

#include <cstdlib>

namespace customs::daemon::volume::redis {

const std::string_view add_script = R"lua(
local now = tonumber(ARGV[1])
local pos = 2
local out = {1}
local plans = {}
local over = false
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[pos])
  local expire_before = tonumber(ARGV[pos + 1])
  local expires_at = tonumber(ARGV[pos + 2])
  local n = tonumber(ARGV[pos + 3])
  pos = pos + 4
  if expire_before > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. expire_before)
  end
  local before = redis.call('ZCARD', key)
  local fresh = 0
  for j = 0, n - 1 do
    if not redis.call('ZSCORE', key, ARGV[pos + j]) then fresh = fresh + 1 end
  end
  plans[i] = {pos, n, expires_at}
  pos = pos + n
  out[#out + 1] = before
  out[#out + 1] = before + fresh
  if before + fresh > limit then over = true end
end
if over then
  out[1] = 0
  return out
end
for i, key in ipairs(KEYS) do
  local p = plans[i]
  for j = 0, p[2] - 1 do
    local seen = redis.call('ZSCORE', key, ARGV[p[1] + j])
    if not seen or tonumber(seen) < now then
      redis.call('ZADD', key, now, ARGV[p[1] + j])
    end
  end
  redis.call('EXPIREAT', key, p[3] + 86400)
end
return out
)lua";

std::string command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
  std::string out;
  if (n > 0 && cmd != nullptr) out.assign(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  return out;
}

std::string eval_command(const std::vector<counter_op>& ops) {
  std::vector<std::string> args;
  std::size_t members = 0;
  for (const auto& op : ops) members += op.members.size();
  args.reserve(4 + ops.size() * 5 + members);
  args.emplace_back("EVAL");
  args.emplace_back(add_script);
  args.emplace_back(std::to_string(ops.size()));
  for (const auto& op : ops) args.emplace_back(std::string(key_prefix) + op.key);
  args.emplace_back(std::to_string(ops.empty() ? 0 : ops.front().now));
  for (const auto& op : ops) {
    // Lua numbers are doubles: a limit past 2^53 is "no limit" anyway.
    const std::uint64_t limit = std::min<std::uint64_t>(op.limit, std::uint64_t{1} << 53);
    args.emplace_back(std::to_string(limit));
    args.emplace_back(std::to_string(op.expire_before));
    args.emplace_back(std::to_string(op.expires_at));
    args.emplace_back(std::to_string(op.members.size()));
    for (const auto& m : op.members) args.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
  }
  return command(args);
}

reply_reader::reply_reader() : r_(redisReaderCreate()) {}
reply_reader::~reply_reader() {
  if (r_ != nullptr) redisReaderFree(r_);
}

bool reply_reader::feed(std::string_view bytes) {
  if (r_ == nullptr) {
    error_ = "out of memory";
    return false;
  }
  if (!error_.empty()) return false;
  if (r_->len - r_->pos + bytes.size() > max_buffered) {
    error_ = "reply over " + std::to_string(max_buffered) + " bytes";
    return false;
  }
  if (redisReaderFeed(r_, bytes.data(), bytes.size()) != REDIS_OK) {
    error_ = r_->errstr;
    return false;
  }
  return true;
}

bool reply_reader::next(reply& out) {
  if (r_ == nullptr || !error_.empty()) return false;
  void* raw = nullptr;
  if (redisReaderGetReply(r_, &raw) != REDIS_OK) {
    error_ = r_->err != 0 ? std::string(r_->errstr) : std::string("protocol error");
    return false;
  }
  if (raw == nullptr) return false;
  auto* rep = static_cast<redisReply*>(raw);
  out = reply{};
  bool ok = true;
  switch (rep->type) {
    case REDIS_REPLY_STATUS:
      out.k = reply::kind::status;
      out.text.assign(rep->str, rep->len);
      break;
    case REDIS_REPLY_ERROR:
      out.k = reply::kind::error;
      out.text.assign(rep->str, rep->len);
      break;
    case REDIS_REPLY_STRING:
      out.k = reply::kind::string;
      out.text.assign(rep->str, rep->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.k = reply::kind::integer;
      out.integer = rep->integer;
      break;
    case REDIS_REPLY_NIL:
      out.k = reply::kind::nil;
      break;
    case REDIS_REPLY_ARRAY:
      out.k = reply::kind::array;
      if (rep->elements > max_elements) {
        ok = false;
        break;
      }
      out.integers.reserve(rep->elements);
      for (std::size_t i = 0; i < rep->elements && ok; ++i) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER) ok = false;
        else out.integers.push_back(rep->element[i]->integer);
      }
      break;
    default:
      ok = false;
  }
  freeReplyObject(rep);
  if (!ok) {
    error_ = "unexpected reply shape";
    return false;
  }
  return true;
}

counter_result decode_add_reply(const reply& r, std::size_t n_ops) {
  counter_result out;
  if (r.k != reply::kind::array || r.integers.size() != 1 + 2 * n_ops || (r.integers[0] != 0 && r.integers[0] != 1)) {
    out.error = store_errc::unavailable;
    return out;
  }
  out.added = r.integers[0] == 1;
  for (std::size_t i = 0; i < n_ops; ++i) {
    const long long before = r.integers[1 + 2 * i];
    const long long after = r.integers[2 + 2 * i];
    if (before < 0 || after < before) {
      out.error = store_errc::unavailable;
      out.counts.clear();
      out.added = false;
      return out;
    }
    policy::volume_count c;
    c.before = static_cast<std::uint64_t>(before);
    c.after = static_cast<std::uint64_t>(after);
    c.added = out.added;
    out.counts.push_back(c);
  }
  return out;
}

}  // namespace customs::daemon::volume::redis
