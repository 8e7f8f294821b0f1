// Training data: images with integer identity labels, from three kinds of source.
//
//   folder   root/<identity>/<image>        identities = sub-folder names, sorted
//   list     "relative_path label" lines    paths relative to a root; labels 0..K−1
//   packed   HDF5 from `marginface pack`:   /images uint8 (N, H, W, 3) RGB, /labels int64 (N),
//                                           /identities strings (K)
//   record   insightface RecordIO train.rec (+ .idx, property), read on demand
// A TrainingSet concatenates sources in order and numbers identities across them (source 2's
// label 0 follows source 1's last label); the id → name table goes into every checkpoint.
// Decoding an unreadable image throws mf::Error naming it; the loader decides to skip or fail.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "h5/file.h"

namespace mf {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t i) const = 0;                      // local, in [0, identities)
  virtual const std::vector<std::string>& identities() const = 0;  // local label → name
  virtual std::string name_of(int64_t i) const = 0;                // the path, for messages
  // Image i as (3, H, W) floats in insightface's normalisation, written to out.
  virtual void load(int64_t i, int H, int W, float* out) const = 0;
};

std::unique_ptr<ImageSource> open_folder_source(const std::string& root, bool crop_center);
std::unique_ptr<ImageSource> open_list_source(const std::string& list, const std::string& root,
                                              bool crop_center);
std::unique_ptr<ImageSource> open_packed_source(const std::string& path, bool crop_center);
// insightface's RecordIO pack: X.rec with X.idx beside it and `property` in its folder (see
// data/recordio.h). Labels keep the pack's numbering; identity names come from X.names (one per
// line, label order) when present, else "label_N".
std::unique_ptr<ImageSource> open_record_source(const std::string& path, bool crop_center);
// Folder, list file (.txt/.lst/.csv), packed file (.h5/.hdf5) or RecordIO pack (.rec), chosen by
// what `spec` is.
std::unique_ptr<ImageSource> open_source(const std::string& spec, const std::string& root,
                                         bool crop_center);

class TrainingSet {
 public:
  // max_identities > 0 keeps only the first that many identities (in source order) and their
  // images: small experiments such as the 2-D feature toy of `marginface ablate`.
  TrainingSet(int height, int width, int64_t max_identities = 0)
      : height_(height), width_(width), max_identities_(max_identities) {}
  void add(std::unique_ptr<ImageSource> source);
  // The sources `specs` (open_source, relative list paths under `root`) in order; a network
  // narrower than tall (112×96) gets the central crop of each 112×112 face.
  static TrainingSet open(const std::vector<std::string>& specs, const std::string& root,
                          int height, int width, int64_t max_identities = 0);

  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const { return static_cast<int64_t>(identities_.size()); }
  int64_t label(int64_t i) const { return labels_[i]; }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<std::string>& identities() const { return identities_; }
  std::string name_of(int64_t i) const;
  void load(int64_t i, float* out) const;  // (3, H, W)
  int height() const { return height_; }
  int width() const { return width_; }

 private:
  int height_, width_;
  int64_t max_identities_;
  std::vector<std::unique_ptr<ImageSource>> sources_;
  std::vector<int64_t> labels_;                 // global label per sample
  std::vector<std::pair<int, int64_t>> where_;  // (source, local index) per sample
  std::vector<std::string> identities_;
};

}  // namespace mf
