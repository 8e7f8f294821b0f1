#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "data/image.h"
#include "data/recordio.h"
#include "util/error.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

// Files on disk, decoded with load_face.
class FileSource : public ImageSource {
 public:
  FileSource(std::vector<std::string> paths, std::vector<int64_t> labels,
             std::vector<std::string> identities, bool crop_center)
      : paths_(std::move(paths)),
        labels_(std::move(labels)),
        identities_(std::move(identities)),
        crop_center_(crop_center) {}
  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  int64_t label(int64_t i) const override { return labels_[i]; }
  const std::vector<std::string>& identities() const override { return identities_; }
  std::string name_of(int64_t i) const override { return paths_[i]; }
  void load(int64_t i, int H, int W, float* out) const override {
    load_face_into(paths_[i], H, W, out, {.crop_center = crop_center_});
  }

 private:
  std::vector<std::string> paths_;
  std::vector<int64_t> labels_;
  std::vector<std::string> identities_;
  bool crop_center_;
};

// Images packed in one HDF5 file. HDF5's serial build is not thread-safe: reads take a lock
// (one 37 KB row is a fast read; decoding dominates elsewhere, not here).
class PackedSource : public ImageSource {
 public:
  PackedSource(const std::string& path, bool crop_center)
      : file_(path, h5::File::Mode::kRead), crop_center_(crop_center) {
    const auto shape = file_.shape_of("/images");
    MF_CHECK(shape.size() == 4 && shape[3] == 3, path, ": /images must be uint8 (N, H, W, 3), got ",
             shape.size(), " dimensions");
    N_ = shape[0];
    H_ = shape[1];
    W_ = shape[2];
    labels_ = file_.read_int64("/labels");
    MF_CHECK(static_cast<int64_t>(labels_.size()) == N_, path, ": ", labels_.size(), " labels for ",
             N_, " images");
    identities_ = file_.read_strings("/identities");
    for (int64_t i = 0; i < N_; ++i)
      MF_CHECK(labels_[i] >= 0 && labels_[i] < static_cast<int64_t>(identities_.size()), path,
               ": label ", labels_[i], " of image ", i, " outside [0, ", identities_.size(), ")");
  }
  int64_t size() const override { return N_; }
  int64_t label(int64_t i) const override { return labels_[i]; }
  const std::vector<std::string>& identities() const override { return identities_; }
  std::string name_of(int64_t i) const override { return file_.path() + "#" + std::to_string(i); }
  void load(int64_t i, int H, int W, float* out) const override {
    int64_t y0 = 0, x0 = 0;
    if (H_ != H || W_ != W) {
      MF_CHECK(crop_center_ && H_ >= H && W_ >= W && (H_ - H) % 2 == 0 && (W_ - W) % 2 == 0,
               name_of(i), ": packed image is ", H_, "x", W_, ", expected ", H, "x", W);
      y0 = (H_ - H) / 2;
      x0 = (W_ - W) / 2;
    }
    std::vector<uint8_t> rgb(H_ * W_ * 3);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      file_.read_uint8_rows("/images", i, 1, rgb.data());
    }
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          out[(c * H + y) * W + x] = (rgb[((y + y0) * W_ + x + x0) * 3 + c] - 127.5f) / 127.5f;
  }

 private:
  h5::File file_;
  bool crop_center_;
  int64_t N_ = 0, H_ = 0, W_ = 0;
  std::vector<int64_t> labels_;
  std::vector<std::string> identities_;
  mutable std::mutex mutex_;
};

// An insightface RecordIO pack (.rec + .idx [+ property]): records read on demand with pread
// from the loader threads, so memory holds only the O(images) offsets and labels.
class RecordSource : public ImageSource {
 public:
  RecordSource(const std::string& path, bool crop_center)
      : reader_(path),
        pack_(recordio::open_training_pack(path, reader_)),
        crop_center_(crop_center) {
    identities_.resize(pack_.num_classes);
    const fs::path names = fs::path(path).replace_extension(".names");
    std::ifstream in(names);
    std::string line;
    int64_t k = 0;
    for (; in && std::getline(in, line); ++k) {
      MF_CHECK(k < pack_.num_classes, names.string(), ":", k + 1, ": more names than the pack's ",
               pack_.num_classes, " classes");
      identities_[k] = line;
    }
    MF_CHECK(k == 0 || k == pack_.num_classes, names.string(), ": ", k, " names for ",
             pack_.num_classes, " classes");
    if (k == 0)
      for (int64_t c = 0; c < pack_.num_classes; ++c) identities_[c] = "label_" + std::to_string(c);
  }
  int64_t size() const override { return static_cast<int64_t>(pack_.offsets.size()); }
  int64_t label(int64_t i) const override { return pack_.labels[i]; }
  const std::vector<std::string>& identities() const override { return identities_; }
  std::string name_of(int64_t i) const override {
    return pack_.rec_path + " key " + std::to_string(pack_.keys[i]);
  }
  void load(int64_t i, int H, int W, float* out) const override {
    const std::string name = name_of(i);
    const std::vector<uint8_t> payload =
        reader_.read(pack_.offsets[i], nullptr, static_cast<int64_t>(pack_.keys[i]));
    const recordio::Header h = recordio::parse_header(payload.data(), payload.size(), name);
    const float own = h.class_label();
    MF_CHECK(own == static_cast<float>(pack_.labels[i]), name, ": the record's label ", own,
             " differs from its identity record's ", pack_.labels[i]);
    decode_face_into(payload.data() + h.image_offset, payload.size() - h.image_offset, name, H, W,
                     out, {.crop_center = crop_center_});
  }

 private:
  recordio::Reader reader_;
  recordio::TrainingPack pack_;
  bool crop_center_;
  std::vector<std::string> identities_;
};

}  // namespace

std::unique_ptr<ImageSource> open_folder_source(const std::string& root, bool crop_center) {
  MF_CHECK(fs::is_directory(root), "training folder not found: '", root, "'");
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<std::string> paths, identities;
  std::vector<int64_t> labels;
  for (const auto& dir : dirs) {
    std::vector<std::string> files = find_images(dir.string());
    if (files.empty()) continue;  // an empty identity folder would be a class with no samples
    for (auto& f : files) f = (dir / f).string();
    const int64_t label = static_cast<int64_t>(identities.size());
    identities.push_back(dir.filename().string());
    for (auto& f : files) {
      paths.push_back(std::move(f));
      labels.push_back(label);
    }
  }
  MF_CHECK(!paths.empty(), "no images (", kImageExtensions, ") under '", root,
           "' (expected root/<identity>/<image>)");
  return std::make_unique<FileSource>(std::move(paths), std::move(labels), std::move(identities),
                                      crop_center);
}

std::unique_ptr<ImageSource> open_list_source(const std::string& list, const std::string& root,
                                              bool crop_center) {
  std::ifstream in(list);
  MF_CHECK(in.good(), "cannot open list file '", list, "'");
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::map<int64_t, std::string> names;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    std::istringstream fields(line);
    std::string path, label_text, extra;
    fields >> path >> label_text;
    MF_CHECK(!label_text.empty() && !(fields >> extra), list, ":", line_no,
             ": expected 'relative_path label', got '", line, "'");
    int64_t label = -1;
    size_t used = 0;
    try {
      label = std::stoll(label_text, &used);
    } catch (...) {
    }
    MF_CHECK(label >= 0 && used == label_text.size(), list, ":", line_no, ": label '", label_text,
             "' is not a non-negative integer");
    const fs::path p =
        fs::path(path).is_absolute() || root.empty() ? fs::path(path) : fs::path(root) / path;
    paths.push_back(p.string());
    labels.push_back(label);
    names.emplace(label, p.parent_path().filename().string());
  }
  MF_CHECK(!paths.empty(), list, ": no samples");
  const int64_t K = names.rbegin()->first + 1;
  std::vector<std::string> identities(K);
  for (int64_t k = 0; k < K; ++k) {
    auto it = names.find(k);
    MF_CHECK(it != names.end(), list, ": labels must be 0..", K - 1, " without gaps; ", k,
             " is missing");
    identities[k] = it->second;
  }
  return std::make_unique<FileSource>(std::move(paths), std::move(labels), std::move(identities),
                                      crop_center);
}

std::unique_ptr<ImageSource> open_packed_source(const std::string& path, bool crop_center) {
  return std::make_unique<PackedSource>(path, crop_center);
}

std::unique_ptr<ImageSource> open_record_source(const std::string& path, bool crop_center) {
  return std::make_unique<RecordSource>(path, crop_center);
}

std::unique_ptr<ImageSource> open_source(const std::string& spec, const std::string& root,
                                         bool crop_center) {
  if (fs::is_directory(spec)) return open_folder_source(spec, crop_center);
  MF_CHECK(fs::exists(spec), "training source not found: '", spec, "'");
  std::string ext = fs::path(spec).extension().string();
  if (ext == ".h5" || ext == ".hdf5") return open_packed_source(spec, crop_center);
  if (ext == ".rec") return open_record_source(spec, crop_center);
  MF_CHECK(!is_image_file(spec), "training source '", spec,
           "' is an image, not a source: give a folder (root/<identity>/<image>), a list file "
           "('relative_path label' lines), a packed .h5 or an insightface .rec");
  return open_list_source(spec, root, crop_center);
}

void TrainingSet::add(std::unique_ptr<ImageSource> source) {
  const int64_t offset = num_classes();
  const int64_t room = max_identities_ > 0 ? max_identities_ - offset : INT64_MAX;
  if (room <= 0) return;
  const int index = static_cast<int>(sources_.size());
  for (int64_t i = 0; i < source->size(); ++i) {
    if (source->label(i) >= room) continue;
    labels_.push_back(offset + source->label(i));
    where_.emplace_back(index, i);
  }
  const auto& names = source->identities();
  for (int64_t k = 0; k < std::min<int64_t>(room, static_cast<int64_t>(names.size())); ++k)
    identities_.push_back(names[k]);
  sources_.push_back(std::move(source));
}

TrainingSet TrainingSet::open(const std::vector<std::string>& specs, const std::string& root,
                              int height, int width, int64_t max_identities) {
  TrainingSet set(height, width, max_identities);
  for (const auto& spec : specs) set.add(open_source(spec, root, width != height));
  return set;
}

std::string TrainingSet::name_of(int64_t i) const {
  const auto& [s, local] = where_[i];
  return sources_[s]->name_of(local);
}

void TrainingSet::load(int64_t i, float* out) const {
  const auto& [s, local] = where_[i];
  sources_[s]->load(local, height_, width_, out);
}

}  // namespace mf
