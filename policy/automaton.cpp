#include "policy/automaton.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

namespace customs::policy {

namespace {

// Follows epsilon edges from the given states; keeps the states that matter for
// identity (those with byte edges or an accept), sorted and unique.
void closure(const pattern::nfa& nfa, std::vector<std::uint32_t>& set,
             std::vector<std::uint32_t>& stack, std::vector<std::uint32_t>& seen_gen,
             std::uint32_t gen) {
  stack.assign(set.begin(), set.end());
  set.clear();
  while (!stack.empty()) {
    const std::uint32_t s = stack.back();
    stack.pop_back();
    if (seen_gen[s] == gen) continue;
    seen_gen[s] = gen;
    const auto& st = nfa.states[s];
    if (!st.edges.empty() || st.accept >= 0) set.push_back(s);
    for (const auto t : st.eps)
      if (seen_gen[t] != gen) stack.push_back(t);
  }
  std::sort(set.begin(), set.end());
}

// A DFA state's identity: its NFA states, then its accept mask id, in one vector.
struct key_hash {
  std::size_t operator()(const std::vector<std::uint32_t>& k) const noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the words
    for (const auto x : k) h = (h ^ x) * 0x100000001b3ull;
    return static_cast<std::size_t>(h);
  }
};

}  // namespace

std::size_t stream_automaton::memory_bytes() const noexcept {
  std::size_t n = trans_.size() * sizeof(std::uint32_t) + terminal_.size() + mask_of_.size() * 4;
  for (const auto& m : masks_) n += m.size() * 4 + sizeof m;
  return n;
}

bool stream_automaton::build(const pattern::nfa& nfa, const std::vector<std::uint32_t>& starts,
                             std::size_t detectors, std::size_t max_states, std::string& error) {
  // Byte classes: bytes that fall on the same side of every edge boundary.
  std::vector<bool> boundary(257, false);
  for (const auto& st : nfa.states)
    for (const auto& e : st.edges) {
      boundary[e.lo] = true;
      boundary[static_cast<std::size_t>(e.hi) + 1] = true;
    }
  std::size_t cls = 0;
  for (int b = 0; b < 256; ++b) {
    if (b > 0 && boundary[static_cast<std::size_t>(b)]) ++cls;
    class_of_[b] = static_cast<std::uint8_t>(cls);
  }
  classes_ = cls + 1;

  // Accept masks, interned. Detector sets as sorted index lists.
  std::map<std::vector<std::uint32_t>, std::uint32_t> mask_ids;
  masks_.assign(1, {});
  mask_ids[{}] = 0;
  auto intern_mask = [&](std::vector<std::uint32_t> m) {
    auto [it, inserted] = mask_ids.emplace(m, static_cast<std::uint32_t>(masks_.size()));
    if (inserted) masks_.push_back(std::move(m));
    return it->second;
  };

  std::unordered_map<std::vector<std::uint32_t>, std::uint32_t, key_hash> ids;
  std::vector<std::vector<std::uint32_t>> sets;  // per DFA state: NFA states
  trans_.clear();
  terminal_.clear();
  mask_of_.clear();
  std::deque<std::uint32_t> todo;

  std::vector<std::uint32_t> key;
  auto intern = [&](std::vector<std::uint32_t>&& set, std::uint32_t mask) -> std::int64_t {
    key.assign(set.begin(), set.end());
    key.push_back(mask);
    if (auto it = ids.find(key); it != ids.end()) return it->second;
    if (sets.size() >= max_states) return -1;
    const auto id = static_cast<std::uint32_t>(sets.size());
    ids.emplace(key, id);
    sets.push_back(std::move(set));
    mask_of_.push_back(mask);
    trans_.resize(trans_.size() + classes_, dead);
    terminal_.push_back(1);
    todo.push_back(id);
    return id;
  };

  // State 0: dead (empty set). State 1: the anchored start.
  (void)intern({}, 0);
  todo.clear();
  std::vector<std::uint32_t> stack;
  std::vector<std::uint32_t> seen(nfa.states.size(), 0);
  std::uint32_t gen = 0;
  std::vector<std::uint32_t> start(starts.begin(), starts.end());
  closure(nfa, start, stack, seen, ++gen);
  if (intern(std::move(start), 0) < 0) {
    error = "state limit too small";
    return false;
  }

  std::vector<std::vector<std::uint32_t>> moves(classes_);
  std::vector<std::uint32_t> acc;
  (void)detectors;
  while (!todo.empty()) {
    const std::uint32_t id = todo.front();
    todo.pop_front();
    for (auto& m : moves) m.clear();
    for (const auto s : sets[id])
      for (const auto& e : nfa.states[s].edges)
        for (std::size_t c = class_of_[e.lo]; c <= class_of_[e.hi]; ++c) moves[c].push_back(e.to);
    const std::uint32_t base_mask = mask_of_[id];
    // Classes often move to the same NFA states (all digits, all letters): compute
    // each distinct move once per DFA state.
    std::vector<std::pair<std::vector<std::uint32_t>, std::uint32_t>> done;
    for (std::size_t c = 0; c < classes_; ++c) {
      if (moves[c].empty()) continue;
      std::sort(moves[c].begin(), moves[c].end());
      moves[c].erase(std::unique(moves[c].begin(), moves[c].end()), moves[c].end());
      bool reused = false;
      for (const auto& [m, to] : done)
        if (m == moves[c]) {
          trans_[static_cast<std::size_t>(id) * classes_ + c] = to;
          if (to != dead) terminal_[id] = 0;
          reused = true;
          break;
        }
      if (reused) continue;
      std::vector<std::uint32_t> next = moves[c];
      closure(nfa, next, stack, seen, ++gen);
      if (next.empty()) {
        done.emplace_back(moves[c], dead);
        continue;
      }
      acc = masks_[base_mask];
      bool grew = false;
      for (const auto s : next) {
        const auto a = nfa.states[s].accept;
        if (a >= 0 && !std::binary_search(acc.begin(), acc.end(), static_cast<std::uint32_t>(a))) {
          acc.insert(std::upper_bound(acc.begin(), acc.end(), static_cast<std::uint32_t>(a)),
                     static_cast<std::uint32_t>(a));
          grew = true;
        }
      }
      const std::uint32_t mask = grew ? intern_mask(acc) : base_mask;
      const std::int64_t to = intern(std::move(next), mask);
      if (to < 0) {
        error = "the streaming automaton needs more than " + std::to_string(max_states) +
                " states";
        return false;
      }
      trans_[static_cast<std::size_t>(id) * classes_ + c] = static_cast<std::uint32_t>(to);
      terminal_[id] = 0;
      done.emplace_back(moves[c], static_cast<std::uint32_t>(to));
    }
  }
  for (int b = 0; b < 256; ++b) first_[b] = next(1, static_cast<unsigned char>(b));
  return true;
}

}  // namespace customs::policy
