#pragma once
// The audit store's own interface beyond the writer contract (audit.hpp): what
// customsctl and the tests need. customsd codes against audit::writer only.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "audit/audit.hpp"

namespace customs::audit {

class store : public writer {
 public:
  // Same as writer::open (throws on any problem), with the extra controls.
  [[nodiscard]] static std::unique_ptr<store> open_store(const writer_options& opts);

  struct erase_result {
    std::uint64_t erasure_seq = 0;      // seq of the erasure record
    std::vector<std::uint64_t> erased;  // seqs whose payload was removed
  };
  // Removes the payloads of every record of a flow and appends an erasure record
  // naming them (with the reason, in clear). Throws std::runtime_error if the flow
  // has no stored payload or the database refuses. Blocks until durable.
  virtual erase_result erase_flow(std::string_view flow_id, std::string_view reason) = 0;

  // Caps the database at `pages` pages (PRAGMA max_page_count; 0 restores
  // SQLite's maximum). At the cap, commits fail like on a full disk. Blocks until
  // the writer thread applied it.
  virtual void set_max_pages(std::uint32_t pages) = 0;

  // The current epoch (of the writer thread's last committed state).
  [[nodiscard]] virtual std::uint64_t epoch() const noexcept = 0;
};

}  // namespace customs::audit
