// A tiny randomly initialised backbone saved as a model checkpoint, for the commands and functions
// that load one (compare, search, embed, export).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mf::test {

// `backbone` at width 0.0625 with D = 16, initialised from `seed`, optionally with a stored
// operating point (`threshold`, described by `threshold_source`). Writes it to `path`; returns
// `path`.
std::string save_tiny_checkpoint(const std::string& path, const std::string& backbone,
                                 uint64_t seed, std::optional<double> threshold = std::nullopt,
                                 const std::string& threshold_source = "");

}  // namespace mf::test
