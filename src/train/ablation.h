// `marginface ablate`: every head trained under identical settings, one table.
//
// An ablation config is a training config (configs/reference.yaml) plus an `ablation` section:
//
//   ablation:
//     output_dir: runs/ablation_small
//     protocol: lfw-view2          # lfw-view2 | lfw-view1 | none
//     heads:                       # name → the head section for that run
//       softmax: {}                #   type defaults to the name
//       arcface: {s: 32, m: 0.5}
//       sphereface_row: {type: combined, s: 64, m1: 1.35, m2: 0, m3: 0}
//       triplet: {alpha: 0.35, set: [data.sampler=pk]}   # set: overrides for this head only
//
// Each head trains in output_dir/NAME (an ordinary run folder: config.yaml, log.jsonl,
// checkpoints/) from the same seed, data, backbone, optimizer, schedule and step budget, and is
// then evaluated by the protocol. NAME/result.json marks a head as done; a killed ablation resumes
// the unfinished head from its last checkpoint and skips the finished ones.
//
// Protocols (the test identities never appear in training; checked before anything trains):
//   lfw-view2  LFW pairs.txt, 10 folds of 600 pairs; training on data.train, which must not
//              contain an identity of the pairs.
//   lfw-view1  training on LFW's peopleDevTrain identities (plus data.train when
//              ablation.view1_add_train_data is set), testing on pairsDevTest with the threshold
//              taken from pairsDevTrain.
//   none       no evaluation (e.g. the 2-D feature toy).
//
// Outputs in output_dir: results.md (the table), results.json (every number), loss.png (training
// loss of all heads), accuracy.png (LFW accuracy per head), target_logits.png (each margin head's
// target logit against θ) and, with ablation.plot_features for 2-D embeddings, features.png and
// features_normalized.png (the training features of each head: the NormFace / SphereFace figures).
#pragma once

#include <string>
#include <vector>

namespace mf {

struct AblationOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // "a.b=value", applied to every head's run
  std::vector<std::string> only;       // train just these heads (the table still lists all done)
  bool fresh = false;                  // retrain the selected heads from scratch
  std::string output_dir;              // replaces ablation.output_dir when not empty
  bool quiet = false;                  // no per-step lines (tests)
  bool check_only = false;  // validate every head's config and the protocol, train nothing
};

struct HeadResult {
  std::string name, type, parameters, protocol;
  double accuracy_mean = -1, accuracy_std = 0, auc = 0, eer = 0, tar_at_far_1e3 = 0;
  double train_loss = 0, train_accuracy = 0;
  double train_seconds = 0, eval_seconds = 0, images_per_s = 0;
  int64_t steps = 0, pairs = 0;
  std::vector<double> fold_accuracies;  // the protocol's folds (10 for LFW View 2)
};

struct AblationReport {
  std::string output_dir;
  std::vector<HeadResult> heads;  // in the config's order, the finished ones
  std::string table;              // markdown
  bool complete = false;          // every head of the config is done
};

AblationReport run_ablation(const AblationOptions& options);

}  // namespace mf
