// `marginface pack`: many image folders into one HDF5 file, so training reads one file instead of
// thousands (and needs no JPEG decoding). Layout:
//   /images      uint8 (N, H, W, 3), RGB
//   /labels      int64 (N), identities numbered across the inputs in order
//   /identities  strings (K)
// Unreadable or wrongly sized images are skipped with a warning and counted; the file is written
// atomically.
#pragma once

#include <string>
#include <vector>

namespace mf {

struct PackSummary {
  int64_t images = 0, identities = 0, skipped = 0;
  std::vector<std::string> skipped_examples;  // the first few, with the reason
};

PackSummary pack_folders(const std::vector<std::string>& inputs, const std::string& output,
                         int height, int width);

// insightface's RecordIO layout (data/recordio.h) from image folders: PREFIX.rec, PREFIX.idx,
// PREFIX.names (identity names, label order) and `property` in PREFIX's folder. Keys: 0 the meta
// record, 1 … N the images (each its file's own bytes, checked to decode at height × width),
// N + 1 … N + K one record per identity. Identities are numbered as training from the folders
// numbers them.
PackSummary pack_folders_rec(const std::vector<std::string>& inputs, const std::string& prefix,
                             int height, int width);

}  // namespace mf
