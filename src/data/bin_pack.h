// insightface's validation packs (lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin, cplfw.bin, …): a
// pickle of (bins, issame_list) — 2N encoded aligned faces, pair i being bins[2i] and bins[2i+1],
// and N booleans. Read with the safe pickle reader (data/pickle.h) whichever Python wrote them;
// written as Python 3 protocol 4 bytes, as insightface's current tools do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mf {

struct BinPack {
  std::string path;
  std::vector<std::string> images;  // 2N encoded images (JPEG/PNG bytes)
  std::vector<uint8_t> same;        // N flags, 1 = the same identity
  int64_t num_pairs() const { return static_cast<int64_t>(same.size()); }
};

// Every malformed file — not a pickle, a forbidden global, an odd image count, a flag list of the
// wrong length — is an mf::Error naming the file (and the byte offset inside the pickle).
BinPack read_bin_pack(const std::string& path);
// Written atomically.
void write_bin_pack(const std::string& path, const std::vector<std::string>& images,
                    const std::vector<uint8_t>& same);

}  // namespace mf
