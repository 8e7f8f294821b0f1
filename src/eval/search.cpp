#include "eval/search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/image.h"
#include "h5/file.h"
#include "util/error.h"

namespace mf::eval {

namespace fs = std::filesystem;

double cosine_similarity(const float* a, const float* b, int64_t dim) {
  double dot = 0, na = 0, nb = 0;
  for (int64_t d = 0; d < dim; ++d) {
    dot += double(a[d]) * b[d];
    na += double(a[d]) * a[d];
    nb += double(b[d]) * b[d];
  }
  if (na == 0 || nb == 0) return 0;
  return dot / (std::sqrt(na) * std::sqrt(nb));
}

std::vector<Match> top_matches(const Tensor& gallery, const float* query, int64_t k) {
  MF_CHECK(gallery.defined() && gallery.rank() == 2, "top_matches: gallery must be (N, D), got ",
           gallery.defined() ? gallery.shape().str() : std::string("an undefined tensor"));
  MF_CHECK(k > 0, "top_matches: k must be positive, got ", k);
  const int64_t N = gallery.dim(0), D = gallery.dim(1);
  std::vector<Match> all(N);
  for (int64_t i = 0; i < N; ++i) all[i] = {i, cosine_similarity(gallery.data() + i * D, query, D)};
  const int64_t keep = std::min(k, N);
  std::partial_sort(all.begin(), all.begin() + keep, all.end(), [](const Match& a, const Match& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  });
  all.resize(keep);
  return all;
}

std::string identity_of(const std::string& path) {
  return fs::path(path).parent_path().filename().string();
}

std::vector<std::string> list_image_files(const std::string& dir) {
  std::vector<std::string> files = find_images(dir);
  for (auto& f : files) f = (fs::path(dir) / f).string();
  return files;
}

Gallery read_embeddings_file(const std::string& path) {
  MF_CHECK(fs::is_regular_file(path), "embeddings file not found: '", path, "'");
  h5::File f(path, h5::File::Mode::kRead);
  MF_CHECK(f.exists("/embeddings") && f.exists("/paths"), path,
           ": not an embeddings file (expected /embeddings and /paths, as `marginface embed` "
           "writes)");
  Gallery g;
  g.embeddings = f.read_tensor("/embeddings");
  MF_CHECK(g.embeddings.rank() == 2 && g.embeddings.dim(0) > 0 && g.embeddings.dim(1) > 0, path,
           ": /embeddings must be a non-empty (N, D) array, got ", g.embeddings.shape());
  const int64_t nonfinite = nonfinite_count(g.embeddings);
  MF_CHECK(nonfinite == 0, path, ": /embeddings holds ", nonfinite,
           " NaN/Inf values (embedded with a diverged checkpoint?); embed again");
  g.paths = f.read_strings("/paths");
  MF_CHECK(static_cast<int64_t>(g.paths.size()) == g.embeddings.dim(0), path, ": ", g.paths.size(),
           " paths for ", g.embeddings.dim(0), " embeddings");
  if (f.has_attr("/meta", "flip")) g.flip = f.read_attr_string("/meta", "flip");
  return g;
}

Embeddings embed_files(Backbone& backbone, const std::vector<std::string>& paths,
                       const EmbedOptions& options, FaceAligner* aligner) {
  if (!aligner) return embed_images(backbone, paths, options);
  const int H = static_cast<int>(backbone.input_height());
  const int W = static_cast<int>(backbone.input_width());
  MF_CHECK(aligner->options().height == H && aligner->options().width == W, "the aligner crops ",
           aligner->options().height, "x", aligner->options().width, " but the backbone takes ", H,
           "x", W);
  MF_CHECK(options.batch_size > 0, "embedding batch size must be positive");
  const int64_t N = static_cast<int64_t>(paths.size()), image_size = 3 * int64_t(H) * W;
  Embeddings out;
  out.failed.assign(N, false);
  for (int64_t start = 0; start < N; start += options.batch_size) {
    std::vector<int64_t> ok;
    std::vector<float> pixels;
    for (int64_t i = start; i < std::min(N, start + options.batch_size); ++i) {
      try {
        const cv::Mat image = read_image(paths[i]);
        const AlignedFace face = aligner->align(image);
        MF_CHECK(face.status != AlignedFace::Status::kNoFace, "no face found in ", paths[i],
                 " (detector thresholds ", aligner->options().threshold, " and ",
                 aligner->options().retry_threshold, ")");
        pixels.resize(pixels.size() + image_size);
        bgr_to_face(face.image, pixels.data() + pixels.size() - image_size);
        ok.push_back(i);
      } catch (const Error& e) {
        out.failed[i] = true;
        out.errors.push_back(e.what());
      }
    }
    if (ok.empty()) continue;
    const int64_t n = static_cast<int64_t>(ok.size());
    Tensor batch = Tensor::empty({n, 3, H, W});
    std::memcpy(batch.data(), pixels.data(), pixels.size() * sizeof(float));
    const Tensor rows = embed_batch(backbone, batch, options);
    if (!out.rows.defined()) out.rows = Tensor::zeros({N, rows.dim(1)});
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(out.rows.data() + ok[r] * rows.dim(1), rows.data() + r * rows.dim(1),
                  rows.dim(1) * sizeof(float));
  }
  if (!out.rows.defined()) {
    const int64_t D = backbone.embedding_size();
    out.rows = Tensor::zeros({N, options.flip == "concat" ? 2 * D : D});
  }
  return out;
}

IdentificationResult identify(Backbone& backbone, const std::string& dir,
                              const EmbedOptions& options, bool skip_unreadable) {
  const std::vector<std::string> files = list_image_files(dir);  // sorted by path
  MF_CHECK(!files.empty(), "identification: no images under '", dir, "'");
  Embeddings e = embed_images(backbone, files, options);
  IdentificationResult r;
  r.failed = e.num_failed();
  if (r.failed > 0 && !skip_unreadable) {
    std::string first;
    int shown = 0;
    for (size_t i = 0; i < files.size() && shown < 3; ++i)
      if (e.failed[i]) first += (shown++ ? ", " : "") + files[i];
    MF_FAIL("identification: ", r.failed, " unreadable images under '", dir, "' (", first,
            r.failed > 3 ? ", ..." : "", "); pass --skip-missing to leave them out");
  }
  // Gallery: the first readable image of each identity; probes: the rest.
  std::vector<int64_t> gallery_rows;
  std::vector<std::string> gallery_ids;
  std::vector<std::pair<int64_t, std::string>> probes;
  for (size_t i = 0; i < files.size(); ++i) {
    if (e.failed[i]) continue;
    const std::string id = identity_of(files[i]);
    if (gallery_ids.empty() || gallery_ids.back() != id) {
      if (std::find(gallery_ids.begin(), gallery_ids.end(), id) == gallery_ids.end()) {
        gallery_ids.push_back(id);
        gallery_rows.push_back(static_cast<int64_t>(i));
        continue;
      }
    }
    probes.emplace_back(static_cast<int64_t>(i), id);
  }
  const int64_t D = e.rows.dim(1);
  Tensor gallery = Tensor::empty({static_cast<int64_t>(gallery_rows.size()), D});
  for (size_t g = 0; g < gallery_rows.size(); ++g)
    std::copy(e.rows.data() + gallery_rows[g] * D, e.rows.data() + (gallery_rows[g] + 1) * D,
              gallery.data() + g * D);
  r.identities = r.gallery = static_cast<int64_t>(gallery_rows.size());
  r.probes = static_cast<int64_t>(probes.size());
  MF_CHECK(r.probes > 0, "identification: '", dir, "' has no identity with two or more images");
  int64_t hit1 = 0, hit5 = 0;
  for (const auto& [row, id] : probes) {
    const auto matches = top_matches(gallery, e.rows.data() + row * D, 5);
    for (size_t k = 0; k < matches.size(); ++k)
      if (gallery_ids[matches[k].index] == id) {
        hit1 += k == 0;
        ++hit5;
        break;
      }
  }
  r.rank1 = double(hit1) / double(r.probes);
  r.rank5 = double(hit5) / double(r.probes);
  return r;
}

}  // namespace mf::eval
