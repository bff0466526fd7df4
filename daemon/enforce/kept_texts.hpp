#pragma once
// The texts an audit record keeps of one direction of a flow (audit.content:
// full), bounded by audit.content_bytes per flow and direction.
//
// Texts are kept whole while the budget lasts. Past it a text is cut at a
// UTF-8 character boundary (texts after it are kept empty), and for every cut
// text the record also gets a marker
//   {"part": I, "bytes": its whole length, "kept": bytes kept, "blake2b": hex}
// with the BLAKE2b-256 of the whole text, so that an auditor holding the text
// can still show that it is the one the flow carried. Replay judges the kept
// texts only (docs/auditor-guide.md).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace customs::crypto {
class hasher;
}

namespace customs::daemon::enforce {

class json_out;

class kept_texts {
 public:
  explicit kept_texts(std::size_t budget);
  ~kept_texts();
  kept_texts(kept_texts&&) noexcept;
  kept_texts& operator=(kept_texts&&) noexcept;

  // A new text (part); returns its index.
  std::size_t open();
  // Appends to part `part` (as received, in order).
  void append(std::size_t part, std::string_view piece);
  // open() + append().
  void add(std::string_view text) { append(open(), text); }

  [[nodiscard]] std::size_t size() const noexcept { return parts_.size(); }
  [[nodiscard]] bool cut() const noexcept { return cut_; }
  // The kept texts, and the markers of the cut ones, written into a record's
  // payload as two arrays (write_markers() finishes the cut texts' hashes:
  // later appends to a cut text are ignored).
  void write_texts(json_out& out) const;
  void write_markers(json_out& out);

 private:
  struct part {
    std::string kept;
    std::uint64_t bytes = 0;
    std::unique_ptr<crypto::hasher> hash;  // from the first byte that did not fit
    std::string digest;                    // hex, once write_markers() finished the hash
    bool sealed = false;
  };
  // Finishes the hash of a cut part (sealing it); whether it has a marker.
  static bool seal(part& p);
  std::size_t left_;
  bool cut_ = false;
  std::vector<part> parts_;
};

}  // namespace customs::daemon::enforce
