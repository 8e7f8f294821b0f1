// Checkpoints for tests: a tiny randomly initialised backbone saved as a model checkpoint (for the
// commands and functions that load one: compare, search, embed, export), and a checkpoint's
// values read back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mf::test {

// Every /model and /head tensor of a checkpoint (parameters and running statistics), flattened in
// the file's name order: two runs that must agree bit for bit compare these with ==.
std::vector<float> checkpoint_values(const std::string& path);

// `backbone` at width 0.0625 with D = 16, initialised from `seed`, optionally with a stored
// operating point (`threshold`, described by `threshold_source`). Writes it to `path`; returns
// `path`.
std::string save_tiny_checkpoint(const std::string& path, const std::string& backbone,
                                 uint64_t seed, std::optional<double> threshold = std::nullopt,
                                 const std::string& threshold_source = "");

}  // namespace mf::test
