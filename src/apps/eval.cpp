// `marginface eval --checkpoint ck.h5 (--lfw pairs.txt | --pairs list.txt | --bin X.bin ...) ...`
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "apps/model_source.h"
#include "eval/embed.h"
#include "eval/quality.h"
#include "eval/search.h"
#include "io/checkpoint.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"
#include "util/json.h"

namespace mf::apps {

namespace {

// Embeds, scores and prints one report block (the same for LFW lists, generic lists and packs).
eval::PairEvaluation evaluate_and_print(Backbone& backbone, const eval::PairList& list,
                                        const eval::PairEvalOptions& options,
                                        const std::string& checkpoint,
                                        const eval::PairList* threshold_list) {
  std::printf("evaluating %s on %zu pairs (%zu images) of %s [%s], flip %s\n", checkpoint.c_str(),
              list.pairs.size(), list.images.size(), list.file.c_str(), list.protocol.c_str(),
              options.embed.flip.c_str());
  const eval::PairEvaluation e = eval::evaluate_pairs(backbone, list, options, threshold_list);
  const auto& r = e.result;
  std::printf("thresholds chosen by: %s\n", r.threshold_source.c_str());
  std::printf("accuracy  %.4f ± %.4f  (%lld pairs", r.accuracy_mean, r.accuracy_std,
              (long long)r.pairs);
  if (e.missing) std::printf(", %lld images missing: their pairs dropped", (long long)e.missing);
  std::printf(")\nfolds    ");
  for (double a : r.fold_accuracies) std::printf(" %.4f", a);
  std::printf("\nAUC %.4f   EER %.4f   threshold %.4f\n", r.auc, r.eer, r.threshold_mean());
  for (const auto& t : r.tar_at_far)
    std::printf(
        "TAR@FAR=%g  %.4f%s\n", t.far, t.tar,
        t.reachable ? "" : "  (too few different-identity pairs to reach this FAR; interpolated)");
  std::printf(
      "operating points (same ⇔ similarity > threshold, exact from the %lld "
      "different-identity pairs):\n",
      (long long)r.negatives);
  for (const auto& p : r.operating_points) {
    if (p.reachable)
      std::printf("  FAR %-7g threshold %.4f  TAR %.4f  (%lld false accepts)\n", p.far, p.threshold,
                  p.tar, (long long)p.false_accepts);
    else
      std::printf("  FAR %-7g not measurable: %lld different-identity pairs, %g needed\n", p.far,
                  (long long)r.negatives, std::ceil(1.0 / p.far));
  }
  std::fflush(stdout);
  return e;
}

// roc.png + "lfw" → roc_lfw.png
std::string path_with_suffix(const std::string& path, const std::string& suffix) {
  std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "_" + suffix + p.extension().string())).string();
}

void print_quality_curve(const eval::QualityCurve& c) {
  std::printf(
      "error versus reject for %s (pairs by their lower feature norm; threshold %.4f = "
      "FAR %g on all pairs)\n  rejected  pairs  accuracy  FNMR\n",
      c.label.c_str(), c.threshold, c.far);
  for (size_t i = 0; i < c.rejected.size(); ++i)
    std::printf("  %7.0f%%  %5lld  %.4f    %.4f\n", 100 * c.rejected[i], (long long)c.kept[i],
                c.accuracy[i], c.fnmr[i]);
}

// A checkpoint's legend label: its run folder's name (RUN/checkpoints/last.h5 → RUN), else the
// path.
std::string run_label(const std::string& checkpoint) {
  const std::string run =
      std::filesystem::path(checkpoint).parent_path().parent_path().filename().string();
  return run.empty() ? checkpoint : run;
}

// --quality-curve: this checkpoint's error-versus-reject curve and those of --quality-compare.
void write_quality_curves(const Args& args, const eval::PairList& list,
                          const eval::PairEvalOptions& options, const eval::PairEvaluation& e,
                          const std::string& checkpoint) {
  const double far = args.get_double("quality-far");
  MF_CHECK(far > 0 && far < 0.5, "--quality-far must be in (0, 0.5), got ", far);
  const auto fractions = eval::default_reject_fractions();
  std::vector<eval::QualityCurve> curves{
      eval::error_versus_reject(e.scores, e.same, e.folds, e.pair_quality, far, fractions)};
  curves.back().label = run_label(checkpoint);
  for (const std::string& other : args.all("quality-compare")) {
    auto net = load_backbone(other);
    std::printf("embedding with %s for the comparison curve\n", other.c_str());
    const eval::PairEvaluation o = eval::evaluate_pairs(*net, list, options);
    curves.push_back(
        eval::error_versus_reject(o.scores, o.same, o.folds, o.pair_quality, far, fractions));
    curves.back().label = run_label(other);
  }
  for (const auto& c : curves) print_quality_curve(c);
  eval::write_quality_curve_png(args.get("quality-curve"), curves,
                                "Error versus reject, " + list.protocol);
  std::printf("wrote %s\n", args.get("quality-curve").c_str());
}

void store_threshold(const std::string& checkpoint, double threshold, const std::string& source) {
  store_verification_threshold(checkpoint, threshold, source);
  std::printf("stored verification_threshold %.4f (%s) in %s\n", threshold, source.c_str(),
              checkpoint.c_str());
}

// --store-threshold (the mean 10-fold accuracy threshold) or --store-threshold-at-far F.
void store_requested_threshold(const Args& args, const std::string& checkpoint,
                               const eval::VerificationResult& r, const std::string& protocol) {
  if (args.flag_set("store-threshold"))
    store_threshold(checkpoint, r.threshold_mean(),
                    "mean 10-fold accuracy threshold on " + protocol + " (" +
                        std::to_string(r.pairs) + " pairs)");
  if (!args.has("store-threshold-at-far")) return;
  const double far = args.get_double("store-threshold-at-far");
  const auto p = std::find_if(r.operating_points.begin(), r.operating_points.end(),
                              [&](const eval::OperatingPoint& o) { return o.far == far; });
  MF_CHECK(p != r.operating_points.end(), "--store-threshold-at-far ", far,
           ": eval measures FAR 0.01, 0.001 and 0.0001");
  MF_CHECK(p->reachable, "--store-threshold-at-far ", far, ": not measurable with ", r.negatives,
           " different-identity pairs");
  char tar[32];
  std::snprintf(tar, sizeof tar, "%.4f", p->tar);
  store_threshold(checkpoint, p->threshold,
                  "FAR " + eval::far_text(far) + " on " + protocol + " (" +
                      std::to_string(r.pairs) + " pairs), TAR " + tar);
}

}  // namespace

int run_eval(const std::vector<std::string>& argv) {
  Args args(
      "eval",
      "Face verification on LFW (official pairs.txt / pairsDevTest.txt), a generic pair list\n"
      "(`path_a path_b label [fold]`) or insightface validation packs (lfw.bin, cfp_fp.bin,\n"
      "agedb_30.bin, …): embeds each image once (flip TTA), scores pairs by cosine similarity,\n"
      "and reports 10-fold accuracy mean ± std, AUC, EER and TAR@FAR.");
  args.option("checkpoint", "model checkpoint (.h5)", "", true);
  args.option("lfw", "LFW pairs file (View 2 pairs.txt or View 1 pairsDevTest.txt)");
  args.option("pairs", "generic pair list: path_a path_b label [fold]");
  args.repeated("bin",
                "an insightface validation pack (lfw.bin, cfp_fp.bin, agedb_30.bin, …): 10 "
                "consecutive folds; repeat for several packs, one report block each");
  args.option("identification",
              "closed-set 1:N on DIR/<identity>/<image>: first image per identity as gallery, the "
              "rest as probes; rank-1 and rank-5");
  args.option("root", "image root (LFW: ROOT/name/name_%04d.jpg)", "");
  args.option("threshold-pairs",
              "a single-fold list takes its threshold from this list (e.g. pairsDevTrain.txt)");
  args.option("flip", "flip test-time augmentation: off, sum, concat", "sum");
  args.option("batch", "images per forward pass", "64");
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  add_conv_kernel_options(args,
                          "convolutions: fp32 (exact) or bf16 (the AMX or AVX512-BF16 fast path; "
                          "its LFW effect is in docs/performance.md)");
  args.flag("skip-missing",
            "drop pairs (--identification: images) that are missing or unreadable instead of "
            "failing");
  args.option("json", "write the metrics as JSON to this file");
  args.option("roc", "draw the ROC curve into this PNG");
  args.flag("store-threshold", "store the mean threshold in the checkpoint's /meta");
  args.option("store-threshold-at-far",
              "store the threshold of this FAR (0.01, 0.001, 0.0001) in the checkpoint's /meta, "
              "for compare");
  args.option(
      "quality-curve",
      "draw the error-versus-reject curve into this PNG: pairs rejected by their lower "
      "feature norm ‖f(x)‖ (MagFace's quality), 0-50 %, accuracy and FNMR (--lfw, --pairs)");
  args.repeated("quality-compare", "another checkpoint whose curve joins --quality-curve's");
  args.option("quality-far", "the FAR whose threshold (on all pairs) gives the FNMR", "0.001");
  if (!args.parse(argv)) return 0;
  args.check_outputs_are_not_inputs({"json", "roc", "quality-curve"},
                                    {"checkpoint", "lfw", "pairs", "bin", "threshold-pairs",
                                     "identification", "quality-compare"});
  MF_CHECK(!args.has("quality-curve") || args.has("lfw") || args.has("pairs"),
           "--quality-curve needs --lfw or --pairs");
  MF_CHECK(args.has("quality-curve") || args.all("quality-compare").empty(),
           "--quality-compare needs --quality-curve");
  MF_CHECK(int(args.has("lfw")) + int(args.has("pairs")) + int(args.has("identification")) +
                   int(args.has("bin")) ==
               1,
           "give exactly one of --lfw, --pairs, --bin and --identification");
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores
  apply_conv_kernel_options(args);

  const std::string checkpoint = args.get("checkpoint");
  if (args.has("identification")) {
    auto net = load_backbone(checkpoint);
    eval::EmbedOptions embed;
    embed.flip = args.get("flip");
    embed.batch_size = args.get_int("batch");
    embed.crop_center = net->input_width() != net->input_height();
    const eval::IdentificationResult r =
        eval::identify(*net, args.get("identification"), embed, args.flag_set("skip-missing"));
    std::printf("identification on %s: %lld identities in the gallery, %lld probes",
                args.get("identification").c_str(), (long long)r.gallery, (long long)r.probes);
    if (r.failed) std::printf(", %lld unreadable images left out", (long long)r.failed);
    std::printf("\nrank-1 %.4f   rank-5 %.4f\n", r.rank1, r.rank5);
    return 0;
  }
  auto backbone = load_backbone(checkpoint);
  eval::PairEvalOptions options;
  options.embed.flip = args.get("flip");
  options.embed.batch_size = args.get_int("batch");
  options.embed.crop_center = backbone->input_width() != backbone->input_height();
  options.skip_missing = args.flag_set("skip-missing");

  if (args.has("bin")) {
    MF_CHECK(!args.has("threshold-pairs"), "--threshold-pairs does not apply to --bin packs");
    MF_CHECK((!args.flag_set("store-threshold") && !args.has("store-threshold-at-far")) ||
                 args.all("bin").size() == 1,
             "--store-threshold needs exactly one --bin pack (whose threshold to store?)");
    const std::vector<std::string> packs = args.all("bin");
    json::Value all = json::Value::object();
    for (const std::string& pack : packs) {
      const eval::PairList list = eval::read_bin_pairs(pack);
      const std::string name = std::filesystem::path(pack).stem().string();
      std::printf("== %s ==\n", name.c_str());
      const eval::PairEvaluation e =
          evaluate_and_print(*backbone, list, options, checkpoint, nullptr);
      all.set(name,
              eval::to_json(e.result, {list.protocol, options.embed.flip, checkpoint, e.missing}));
      if (args.has("roc"))
        eval::write_roc_png(
            packs.size() == 1 ? args.get("roc") : path_with_suffix(args.get("roc"), name),
            e.result.roc, name + " - " + checkpoint);
      store_requested_threshold(args, checkpoint, e.result, name);
    }
    if (args.has("json")) json::write_file(args.get("json"), all.dump(2) + "\n");
    return 0;
  }

  const bool lfw = args.has("lfw");
  const eval::PairList list = lfw ? eval::read_lfw_pairs(args.get("lfw"), args.get("root"))
                                  : eval::read_generic_pairs(args.get("pairs"), args.get("root"));
  std::unique_ptr<eval::PairList> threshold_list;
  if (args.has("threshold-pairs"))
    threshold_list = std::make_unique<eval::PairList>(
        lfw ? eval::read_lfw_pairs(args.get("threshold-pairs"), args.get("root"))
            : eval::read_generic_pairs(args.get("threshold-pairs"), args.get("root")));
  const eval::PairEvaluation e =
      evaluate_and_print(*backbone, list, options, checkpoint, threshold_list.get());
  const auto& r = e.result;
  const eval::ReportInfo info{list.protocol, options.embed.flip, checkpoint, e.missing};
  if (args.has("json")) eval::write_json(args.get("json"), r, info);
  if (args.has("roc"))
    eval::write_roc_png(args.get("roc"), r.roc, list.protocol + " - " + checkpoint);
  store_requested_threshold(args, checkpoint, r, list.protocol);
  if (args.has("quality-curve")) write_quality_curves(args, list, options, e, checkpoint);
  return 0;
}

}  // namespace mf::apps
