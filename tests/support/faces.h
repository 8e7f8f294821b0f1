// Synthetic "faces" for end-to-end tests: identity-specific colour checkerboards with pixel noise,
// 112×112, deterministic for a seed. Fast to make, easy to tell apart, nothing from ../shared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mf::test {

struct PeopleStyle {
  int contrast = 60;       // brightness step between identities' checkerboards
  bool lfw_names = false;  // NAME/NAME_0001.jpg … (LFW) instead of NAME/0.png …
};

// ROOT/NAME/<image> for each name, `per_identity` images each.
void make_people(const std::filesystem::path& root, const std::vector<std::string>& names,
                 int per_identity, uint64_t seed, PeopleStyle style = {});

// A smooth random 112×112 BGR image (blurred uniform noise, stretched to 0…255) written to
// `path` (folders created), distinct per seed: a stand-in face for commands that embed images.
// Returns `path`.
std::string write_face(const std::string& path, unsigned seed);

// The common training set: 4 identities id0..id3 × 6 PNGs under `root`; returns root.
std::filesystem::path make_faces(const std::filesystem::path& root);

}  // namespace mf::test
