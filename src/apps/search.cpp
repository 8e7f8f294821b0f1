// `marginface search --checkpoint ck.h5 --gallery DIR_OR_EMB.h5 --query IMAGE_OR_DIR [--top K]`:
// 1:N identification — the gallery faces most similar to each query by cosine similarity.
#include "eval/search.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/commands.h"
#include "apps/decision_threshold.h"
#include "apps/face_pipeline.h"
#include "apps/model_source.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"
#include "util/json.h"

namespace mf::apps {

namespace {

namespace fs = std::filesystem;

bool is_h5(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".h5" || ext == ".hdf5";
}

// Warns about (and counts) the images that could not be embedded.
void report_failures(const char* what, const eval::Embeddings& e, size_t total) {
  if (e.num_failed() == 0) return;
  std::fprintf(stderr, "warning: %lld of %zu %s images left out (unreadable or no face); first:\n",
               (long long)e.num_failed(), total, what);
  for (size_t i = 0; i < std::min<size_t>(3, e.errors.size()); ++i)
    std::fprintf(stderr, "  %s\n", e.errors[i].c_str());
}

}  // namespace

int run_search(const std::vector<std::string>& argv) {
  Args args("search",
            "1:N identification: ranks the gallery faces by cosine similarity to each query.\n"
            "The gallery is a folder of face images (embedded here) or an embeddings file from\n"
            "`marginface embed` (/embeddings, /paths); a gallery image's identity is the name of\n"
            "its parent folder. With --align, every image embedded here (queries, and a gallery\n"
            "folder) is a raw photo, detected and aligned first. With --threshold T, or\n"
            "--threshold-at-far F --calibration eval.json, each match is marked as a match or not\n"
            "at that operating point. --model model.onnx runs an export of `marginface export`\n"
            "through OpenCV dnn instead of a checkpoint.");
  add_model_options(args);
  args.option("gallery", "folder of face images, or an embeddings .h5 from `marginface embed`", "",
              true);
  args.option("probe", "a face image or a folder of them");
  args.option("query", "the same as --probe");
  args.option("top", "matches to show per query", "5");
  args.option("flip",
              "flip test-time augmentation: off, sum, concat (default: the gallery file's, "
              "else sum)");
  add_align_options(args);
  add_threshold_options(args);
  args.option("json", "also write the matches as JSON to this file");
  args.option("batch", "images per forward pass", "64");
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  if (!args.parse(argv)) return 0;
  args.check_outputs_are_not_inputs({"json"}, {"checkpoint", "model", "gallery", "probe", "query"});
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores
  const int64_t top = args.get_int("top");
  MF_CHECK(top > 0, "--top must be positive, got ", top);

  const std::string gallery_spec = args.get("gallery");
  EmbeddingModel model = load_embedding_model(args);
  const std::string& checkpoint = model.path;
  // Only when asked for: a search without threshold options lists scores, as it always has.
  const std::optional<DecisionThreshold> decision =
      resolve_threshold(args, CheckpointMeta{}, checkpoint, false);
  if (decision)
    std::printf("a match: similarity above %.4f (from %s)\n", decision->value,
                decision->source.c_str());
  MF_CHECK(args.has("probe") != args.has("query"),
           "give the probe images with --probe (or --query)");
  const std::string query_spec = args.has("probe") ? args.get("probe") : args.get("query");
  MF_CHECK(fs::exists(query_spec), "--probe '", query_spec, "' does not exist");
  const std::vector<std::string> queries = fs::is_directory(query_spec)
                                               ? eval::list_image_files(query_spec)
                                               : std::vector<std::string>{query_spec};
  MF_CHECK(!queries.empty(), "no images under --probe '", query_spec, "'");

  Backbone* backbone = model.backbone.get();
  auto aligner = make_aligner(args, static_cast<int>(backbone->input_height()),
                              static_cast<int>(backbone->input_width()));
  eval::EmbedOptions options;
  options.batch_size = args.get_int("batch");
  options.crop_center = backbone->input_width() != backbone->input_height();

  // The gallery: rows and paths of the images that could be embedded.
  eval::Gallery gallery;
  std::string flip;  // as asked (options.flip is "off" when the model sums the flip itself)
  if (is_h5(gallery_spec) && !fs::is_directory(gallery_spec)) {
    gallery = eval::read_embeddings_file(gallery_spec);
    flip = args.has("flip") ? args.get("flip") : gallery.flip.empty() ? "sum" : gallery.flip;
    MF_CHECK(gallery.flip.empty() || gallery.flip == flip, gallery_spec, " was embedded with flip ",
             gallery.flip, ", but --flip is ", flip);
    options.flip = model.flip_to_run(flip);
  } else {
    MF_CHECK(fs::is_directory(gallery_spec), "--gallery '", gallery_spec,
             "' is neither a folder nor an embeddings .h5 file");
    flip = args.has("flip") ? args.get("flip") : "sum";
    options.flip = model.flip_to_run(flip);
    const std::vector<std::string> files = eval::list_image_files(gallery_spec);
    MF_CHECK(!files.empty(), "no images under --gallery '", gallery_spec, "'");
    std::printf("embedding %zu gallery images from %s\n", files.size(), gallery_spec.c_str());
    std::fflush(stdout);
    const eval::Embeddings e = eval::embed_files(*backbone, files, options, aligner.get());
    report_failures("gallery", e, files.size());
    const int64_t D = e.rows.dim(1), kept = int64_t(files.size()) - e.num_failed();
    MF_CHECK(kept > 0,
             "none of the gallery images could be embedded; first error: ", e.errors.front());
    gallery.embeddings = Tensor::empty({kept, D});
    for (size_t i = 0, r = 0; i < files.size(); ++i) {
      if (e.failed[i]) continue;
      std::copy_n(e.rows.data() + i * D, D, gallery.embeddings.data() + (r++) * D);
      gallery.paths.push_back(files[i]);
    }
  }

  const eval::Embeddings q = eval::embed_files(*backbone, queries, options, aligner.get());
  report_failures("query", q, queries.size());
  MF_CHECK(q.num_failed() < static_cast<int64_t>(queries.size()),
           "none of the queries could be embedded; first error: ", q.errors.front());
  const int64_t D = q.rows.dim(1);
  MF_CHECK(gallery.embeddings.dim(1) == D, "the gallery's embeddings have ",
           gallery.embeddings.dim(1), " values but this model (flip ", flip, ") gives ", D,
           "; embed the gallery with the same checkpoint and --flip");

  json::Value results = json::Value::array();
  for (size_t i = 0, failed = 0; i < queries.size(); ++i) {
    if (q.failed[i]) {
      json::Value entry = json::Value::object();
      entry.set("query", queries[i]).set("error", q.errors[failed++]);
      results.push_back(std::move(entry));
      continue;
    }
    const auto matches = eval::top_matches(gallery.embeddings, q.rows.data() + i * D, top);
    std::printf("%s\n", queries[i].c_str());
    json::Value list = json::Value::array();
    for (size_t r = 0; r < matches.size(); ++r) {
      const std::string& path = gallery.paths[matches[r].index];
      const std::string identity = eval::identity_of(path);
      const bool match = decision && matches[r].score > decision->value;
      std::printf("  %2zu. %.4f  %-24s %s%s\n", r + 1, matches[r].score,
                  identity.empty() ? "?" : identity.c_str(), path.c_str(),
                  !decision ? ""
                  : match   ? "  match"
                            : "  no match");
      json::Value m = json::Value::object();
      m.set("rank", static_cast<int64_t>(r + 1))
          .set("score", matches[r].score)
          .set("identity", identity)
          .set("path", path);
      if (decision) m.set("match", match);
      list.push_back(std::move(m));
    }
    json::Value entry = json::Value::object();
    entry.set("query", queries[i]).set("matches", std::move(list));
    results.push_back(std::move(entry));
  }
  if (args.has("json")) {
    json::Value report = json::Value::object();
    report.set("checkpoint", checkpoint)
        .set("gallery", gallery_spec)
        .set("gallery_size", static_cast<int64_t>(gallery.paths.size()))
        .set("flip", flip)
        .set("top", top)
        .set("queries_failed", q.num_failed())
        .set("results", std::move(results));
    if (decision)
      report.set("threshold", decision->value).set("threshold_source", decision->source);
    json::write_file(args.get("json"), report.dump());
  }
  return 0;
}

}  // namespace mf::apps
