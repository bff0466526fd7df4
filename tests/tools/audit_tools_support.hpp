#pragma once
// Runs a customsctl command group in-process and captures what it prints.
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tools/commands.hpp"

namespace customs::tools::testing {

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

template <typename Fn>
run_result run_captured(Fn fn, std::vector<std::string> args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  run_result r;
  try {
    r.code = fn(std::span<const std::string_view>(views));
  } catch (...) {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    throw;
  }
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

inline run_result audit_cmd(std::vector<std::string> args) { return run_captured(run_audit, std::move(args)); }
inline run_result keys_cmd(std::vector<std::string> args) { return run_captured(run_keys, std::move(args)); }

}  // namespace customs::tools::testing
