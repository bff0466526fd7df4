#pragma once
// The streaming prefilter automaton (private to policy/): a DFA, built once at
// load time from the union of every detector's superset NFA (pattern.hpp), run
// ANCHORED from each position where a match may start. A DFA state stands for
// "the bytes since the candidate start are a prefix of some match"; state 0 is
// dead ("no detector can match from there"). Each state also carries the set of
// detectors that could have ENDED a match somewhere on the way to it, so that a
// candidate that dies knows which detectors (if any) RE2 must confirm.
//
// All patterns are bounded, so the NFA is acyclic and every candidate dies within
// the longest match plus one byte. Transitions are indexed by byte class (bytes
// no pattern distinguishes share a class) to keep the table small.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/pattern.hpp"

namespace customs::policy {

class stream_automaton {
 public:
  // Builds the DFA. starts[d] is detector d's NFA start state. Returns false (and
  // sets error) when it would need more than max_states states.
  [[nodiscard]] bool build(const pattern::nfa& nfa, const std::vector<std::uint32_t>& starts,
                           std::size_t detectors, std::size_t max_states, std::string& error);

  static constexpr std::uint32_t dead = 0;

  // The state after the first byte of a candidate, or dead.
  [[nodiscard]] std::uint32_t first(unsigned char b) const noexcept { return first_[b]; }
  [[nodiscard]] std::uint32_t next(std::uint32_t s, unsigned char b) const noexcept {
    return trans_[static_cast<std::size_t>(s) * classes_ + class_of_[b]];
  }
  // No byte leads anywhere but dead from s.
  [[nodiscard]] bool terminal(std::uint32_t s) const noexcept { return terminal_[s] != 0; }
  // Detectors (indices, ascending) that may have matched on the way to s.
  [[nodiscard]] const std::vector<std::uint32_t>& accepted(std::uint32_t s) const noexcept {
    return masks_[mask_of_[s]];
  }
  [[nodiscard]] std::uint32_t mask_id(std::uint32_t s) const noexcept { return mask_of_[s]; }
  [[nodiscard]] const std::vector<std::vector<std::uint32_t>>& masks() const noexcept { return masks_; }
  [[nodiscard]] std::size_t states() const noexcept { return mask_of_.size(); }
  // Raw tables for the stream scanner's inner loop (same data as above).
  [[nodiscard]] const std::uint32_t* transitions() const noexcept { return trans_.data(); }
  [[nodiscard]] const std::uint8_t* byte_classes() const noexcept { return class_of_; }
  [[nodiscard]] const std::uint32_t* first_states() const noexcept { return first_; }
  [[nodiscard]] const std::uint8_t* terminals() const noexcept { return terminal_.data(); }
  [[nodiscard]] const std::uint32_t* mask_ids() const noexcept { return mask_of_.data(); }
  [[nodiscard]] std::size_t classes() const noexcept { return classes_; }
  [[nodiscard]] std::size_t memory_bytes() const noexcept;

 private:
  std::uint8_t class_of_[256] = {};
  std::size_t classes_ = 0;
  std::uint32_t first_[256] = {};
  std::vector<std::uint32_t> trans_;     // states x classes
  std::vector<std::uint8_t> terminal_;   // per state
  std::vector<std::uint32_t> mask_of_;   // per state: index into masks_
  std::vector<std::vector<std::uint32_t>> masks_;  // masks_[0] is empty
};

}  // namespace customs::policy
