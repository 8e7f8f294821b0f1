#include "train/ablation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "data/dataset.h"
#include "eval/embed.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "losses/head.h"
#include "train/ablation_report.h"
#include "train/run_folder.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/json.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

// What the `ablation` section says, read and checked once.
struct Setup {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string output_dir;
  std::string protocol;  // lfw-view2 | lfw-view1 | none
  std::string lfw_root, pairs, threshold_pairs, people;
  bool view1_add_train_data = false;
  // lfw-view1: train on LFW's peopleDevTrain identities (View 1's training half); false keeps
  // data.train (identities disjoint from LFW) and only tests on View 1's pairs: the development
  // protocol for choosing a recipe for non-LFW training data.
  bool view1_lfw_training = true;
  bool plot_features = false;
  int64_t features_per_identity = 40;
  std::string baseline;            // the head the others are compared with fold by fold
  std::vector<std::string> heads;  // names, in file order
};

Setup read_setup(const AblationOptions& o) {
  const Config cfg = Config::load(o.config_path, o.overrides);
  MF_CHECK(cfg.has("ablation"), o.config_path,
           ": no 'ablation' section (see configs/ablation_small.yaml)");
  Setup a;
  a.config_path = o.config_path;
  a.overrides = o.overrides;
  Params all = cfg.section("ablation");
  std::vector<std::string> head_keys;
  for (const auto& k : all.keys())
    if (k.rfind("heads.", 0) == 0) head_keys.push_back(k);
  Params p = all.except(head_keys);
  const std::string configured_output = p.get_string("output_dir", "runs/ablation");
  a.output_dir = o.output_dir.empty() ? configured_output : o.output_dir;
  a.protocol = p.get_string("protocol", "lfw-view2", {"lfw-view2", "lfw-view1", "none"});
  const std::string lfw_dir = p.get_string("lfw.lists", "../shared/data/lfw");
  a.lfw_root = p.get_string("lfw.root", "../shared/data/aligned/lfw");
  const bool view1 = a.protocol == "lfw-view1";
  a.pairs = p.get_string("lfw.pairs", lfw_dir + (view1 ? "/pairsDevTest.txt" : "/pairs.txt"));
  a.threshold_pairs =
      p.get_string("lfw.threshold_pairs", view1 ? lfw_dir + "/pairsDevTrain.txt" : "");
  a.people = p.get_string("lfw.train_people", lfw_dir + "/peopleDevTrain.txt");
  a.view1_add_train_data = p.get_bool("view1_add_train_data", false);
  a.view1_lfw_training = p.get_bool("view1_lfw_training", true);
  a.plot_features = p.get_bool("plot_features", false);
  a.features_per_identity = p.get_int("features_per_identity", 40, 1, 100000);
  const bool baseline_given = p.has("baseline");
  a.baseline = p.get_string("baseline", "softmax");
  p.finish("ablation");
  a.heads = cfg.keys("ablation.heads");
  MF_CHECK(!a.heads.empty(), o.config_path, ": ablation.heads lists no head");
  MF_CHECK(!baseline_given || std::count(a.heads.begin(), a.heads.end(), a.baseline), o.config_path,
           ": ablation.baseline '", a.baseline, "' is not one of ablation.heads");
  for (const auto& name : o.only)
    MF_CHECK(std::find(a.heads.begin(), a.heads.end(), name) != a.heads.end(), "--only ", name,
             ": not a head of ", o.config_path, " (ablation.heads)");
  return a;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

fs::path head_dir(const Setup& a, const std::string& name) {
  return fs::path(a.output_dir) / name;
}

// LFW View 1 training list: every image of the peopleDevTrain identities ("name count" lines
// after a count header), as "name/name_%04d.jpg label" for a list source rooted at the LFW folder.
std::string write_view1_list(const Setup& a) {
  std::ifstream in(a.people);
  MF_CHECK(in.good(), "cannot open the LFW people list '", a.people,
           "' (ablation.lfw.train_people)");
  std::string line;
  std::getline(in, line);
  std::ostringstream list;
  int64_t label = 0;
  for (int line_no = 2; std::getline(in, line); ++line_no) {
    std::istringstream fields(line);
    std::string name;
    int count = 0;
    if (!(fields >> name)) continue;
    MF_CHECK(fields >> count && count > 0, a.people, ":", line_no, ": expected 'name count'");
    for (int i = 1; i <= count; ++i)
      list << fs::path(eval::lfw_image_path("", name, i)).generic_string() << ' ' << label << '\n';
    ++label;
  }
  MF_CHECK(label > 0, a.people, ": no identities");
  const fs::path path = fs::path(a.output_dir) / "view1_train.txt";
  fs::create_directories(a.output_dir);
  json::write_file(path.string(), list.str());
  return path.string();
}

// The training config of one head: the base sections, `head` replaced by ablation.heads.NAME,
// that head's own `set` overrides, its run folder, and the protocol's training data.
struct HeadRun {
  std::string name;
  Config config;
  std::string type, parameters;
};

HeadRun head_config(const Setup& a, const std::string& name, const std::string& view1_list) {
  HeadRun run{name, Config::load(a.config_path, a.overrides), "", ""};
  Config& c = run.config;
  c.replace_section("head", "ablation.heads." + name);
  const Params head = c.section("head");
  const std::vector<std::string> sets = head.get_list("set");
  std::vector<std::string> shown;
  for (const auto& key : c.keys("head"))
    if (key != "type" && key != "set") shown.push_back(key + "=" + head.get_string(key, ""));
  for (const auto& s : sets) shown.push_back(s);
  run.parameters = join(shown, ", ");
  run.type = head.get_string("type", name);
  c.erase("head.set");
  c.erase("ablation");

  std::vector<std::string> own = sets;
  if (!head.has("type")) own.push_back("head.type=" + name);
  own.push_back("train.output_dir=" + head_dir(a, name).string());
  own.push_back("eval.lfw.pairs=");  // the ablation evaluates once training is done
  if (a.protocol == "lfw-view1" && a.view1_lfw_training) {
    std::vector<std::string> sources{view1_list};
    if (a.view1_add_train_data)
      for (const auto& s : c.section("data").get_list("train")) sources.push_back(s);
    own.push_back("data.train=[" + join(sources, ", ") + "]");
    own.push_back("data.root=" + a.lfw_root);
  }
  c.apply_overrides(own);
  return run;
}

// The training set a head's run reads (data.train, data.root, data.max_identities), at the
// network's input size.
TrainingSet training_set(const Config& c, int64_t height, int64_t width) {
  const Params data = c.section("data");
  return TrainingSet::open(data.get_list("train"), data.get_string("root", ""),
                           static_cast<int>(height), static_cast<int>(width),
                           data.get_int("max_identities", 0, 0));
}

// Refuses to start when a training identity appears in the test pairs (by identity name: the
// folder name for folder sources, the parent folder for list sources).
void check_disjoint(const Config& c, const eval::PairList& test) {
  std::set<std::string> test_names;
  for (const auto& image : test.images)
    test_names.insert(fs::path(image).parent_path().filename().string());
  std::vector<std::string> shared;
  const TrainingSet training = training_set(c, 112, 112);  // a named set: the loop holds references
  for (const auto& name : training.identities())
    if (test_names.count(name)) shared.push_back(name);
  if (shared.empty()) return;
  shared.resize(std::min<size_t>(shared.size(), 5));
  MF_FAIL("the training data shares identities with the test pairs ", test.file, " (e.g. ",
          join(shared, ", "), "): the protocol forbids training on a test identity");
}

// ---- one head: train, evaluate, record ----

using Clock = std::chrono::steady_clock;

// Raw 2-D features of up to `per_identity` training images per identity, "label x y" lines.
void write_features(const Setup& a, const Config& c, Backbone& net, const fs::path& out) {
  MF_CHECK(net.embedding_size() == 2, "ablation.plot_features needs model.embedding_size: 2, not ",
           net.embedding_size());
  const TrainingSet set = training_set(c, net.input_height(), net.input_width());
  std::vector<int64_t> picked;
  std::map<int64_t, int64_t> taken;
  for (int64_t i = 0; i < set.size(); ++i)
    if (taken[set.label(i)]++ < a.features_per_identity) picked.push_back(i);
  net.eval();
  NoGradGuard no_grad;
  std::ostringstream text;
  const int64_t B = 64, per_image = 3 * net.input_height() * net.input_width();
  for (size_t start = 0; start < picked.size(); start += B) {
    const int64_t n = std::min<int64_t>(B, static_cast<int64_t>(picked.size() - start));
    Tensor batch = Tensor::empty(Shape{n, 3, net.input_height(), net.input_width()});
    for (int64_t j = 0; j < n; ++j) set.load(picked[start + j], batch.data() + j * per_image);
    const Tensor f = net.forward(Var(batch)).value();
    for (int64_t j = 0; j < n; ++j)
      text << set.label(picked[start + j]) << ' ' << f.data()[2 * j] << ' ' << f.data()[2 * j + 1]
           << '\n';
  }
  json::write_file(out.string(), text.str());
}

HeadResult run_head(const Setup& a, const std::string& name, const HeadRun& run,
                    const eval::PairList* test, const eval::PairList* threshold_list, bool quiet) {
  const fs::path dir = head_dir(a, name);
  std::printf("\n=== ablation: head '%s' (%s%s%s) in %s ===\n", name.c_str(), run.type.c_str(),
              run.parameters.empty() ? "" : ": ", run.parameters.c_str(), dir.string().c_str());
  std::fflush(stdout);
  TrainOptions options;
  options.resume = "auto";
  options.quiet = quiet;
  const TrainSummary summary = train(run.config, options);
  MF_CHECK(summary.finished, "head '", name, "' stopped at step ", summary.steps,
           "; run the same command again to continue");

  HeadResult r;
  r.name = name;
  r.type = run.type;
  r.parameters = run.parameters;
  r.protocol = a.protocol;
  const std::vector<StepRecord> log = read_step_records((dir / "log.jsonl").string());
  MF_CHECK(!log.empty(), (dir / "log.jsonl").string(), ": no training records");
  // Final loss and accuracy: the mean over the last 10 % of the steps (single batches are noisy).
  const size_t tail = std::max<size_t>(1, log.size() / 10);
  for (size_t i = log.size() - tail; i < log.size(); ++i) {
    r.train_loss += log[i].loss / tail;
    r.train_accuracy += log[i].acc / tail;
  }
  r.steps = log.back().step;
  r.train_seconds = log.back().time;
  const Params data = run.config.section("data");
  const double images = double(r.steps) * data.get_int("batch_size", 64) *
                        run.config.section("optim").get_int("grad_accum", 1);
  r.images_per_s = r.train_seconds > 0 ? images / r.train_seconds : 0;

  const std::string checkpoint = (dir / "checkpoints" / "last.h5").string();
  auto net = load_backbone(checkpoint);
  if (test) {
    const auto t0 = Clock::now();
    const Params ev = run.config.section("eval");
    eval::PairEvalOptions po;
    po.embed.flip = ev.get_string("lfw.flip", "sum", {"off", "sum", "concat"});
    po.embed.batch_size = static_cast<int>(ev.get_int("lfw.batch_size", 64, 1, 4096));
    po.embed.crop_center = net->input_width() != net->input_height();
    po.skip_missing = ev.get_bool("lfw.skip_missing", false);
    const eval::PairEvaluation e = eval::evaluate_pairs(*net, *test, po, threshold_list);
    r.eval_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.accuracy_mean = e.result.accuracy_mean;
    r.accuracy_std = e.result.accuracy_std;
    r.auc = e.result.auc;
    r.eer = e.result.eer;
    r.pairs = e.result.pairs;
    r.fold_accuracies = e.result.fold_accuracies;
    for (const auto& t : e.result.tar_at_far)
      if (std::abs(t.far - 1e-3) < 1e-12) r.tar_at_far_1e3 = t.tar;
    json::write_file(
        (dir / "eval.json").string(),
        eval::to_json(e.result, {test->protocol, po.embed.flip, checkpoint, e.missing}).dump());
    std::printf("[ablation] %s: LFW %.4f ± %.4f  AUC %.4f  TAR@FAR=1e-3 %.4f  (%.0f s)\n",
                name.c_str(), r.accuracy_mean, r.accuracy_std, r.auc, r.tar_at_far_1e3,
                r.eval_seconds);
  }
  if (a.plot_features) write_features(a, run.config, *net, dir / "features.txt");
  json::write_file((dir / "result.json").string(),
                   head_result_json(r).dump());  // last: marks the head done
  return r;
}

}  // namespace

AblationReport run_ablation(const AblationOptions& o) {
  const Setup a = read_setup(o);
  const std::string view1_list =
      a.protocol == "lfw-view1" && a.view1_lfw_training ? write_view1_list(a) : "";

  // Every head's config is built and checked before the first one trains, and so is the rule
  // that no training identity appears in the test pairs.
  std::unique_ptr<eval::PairList> test, threshold_list;
  if (a.protocol != "none") {
    test = std::make_unique<eval::PairList>(eval::read_lfw_pairs(a.pairs, a.lfw_root));
    if (!a.threshold_pairs.empty())
      threshold_list =
          std::make_unique<eval::PairList>(eval::read_lfw_pairs(a.threshold_pairs, a.lfw_root));
  }
  std::vector<HeadRun> runs;
  for (const auto& name : a.heads) {
    runs.push_back(head_config(a, name, view1_list));
    check_config(runs.back().config);
    if (test) check_disjoint(runs.back().config, *test);
  }

  AblationReport report;
  report.output_dir = a.output_dir;
  if (o.check_only) {
    for (size_t i = 0; i < a.heads.size(); ++i)
      std::printf("%-24s %s%s%s\n", a.heads[i].c_str(), runs[i].type.c_str(),
                  runs[i].parameters.empty() ? "" : ": ", runs[i].parameters.c_str());
    std::printf("%zu heads; configs valid; protocol %s%s\n", a.heads.size(), a.protocol.c_str(),
                test ? " (training identities disjoint from the test pairs)" : "");
    return report;
  }
  report.complete = true;
  fs::create_directories(a.output_dir);
  for (size_t i = 0; i < a.heads.size(); ++i) {
    const std::string& name = a.heads[i];
    const fs::path dir = head_dir(a, name);
    const bool selected =
        o.only.empty() || std::find(o.only.begin(), o.only.end(), name) != o.only.end();
    if (selected && o.fresh && fs::exists(dir)) fs::remove_all(dir);
    if (fs::exists(dir / "result.json")) {
      report.heads.push_back(read_head_result((dir / "result.json").string()));
      if (selected)
        std::printf("ablation: head '%s' already done (%s/result.json); --fresh retrains it\n",
                    name.c_str(), dir.string().c_str());
      continue;
    }
    if (!selected) {
      report.complete = false;
      continue;
    }
    report.heads.push_back(run_head(a, name, runs[i], test.get(), threshold_list.get(), o.quiet));
  }
  AblationReportSpec spec{a.output_dir, a.config_path, a.protocol, a.overrides, a.plot_features,
                          {},           a.baseline};
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto done = std::find_if(report.heads.begin(), report.heads.end(),
                                   [&](const HeadResult& r) { return r.name == runs[i].name; });
    if (done == report.heads.end()) continue;
    // At the last step: SphereFace's λ and the margin warm-ups as trained.
    spec.target_logits.push_back(
        {runs[i].name, done->type, runs[i].config.section("head").except({"type"}), done->steps});
  }
  write_ablation_report(spec, report);
  return report;
}

}  // namespace mf
