// `marginface train --config FILE [--set key=value ...] [--resume ck.h5|auto]`
#include <cstdio>

#include "apps/commands.h"
#include "train/trainer.h"
#include "util/args.h"

namespace mf::apps {

int run_train(const std::vector<std::string>& argv) {
  Args args("train",
            "Trains a backbone with a margin head as the YAML config says (configs/reference.yaml\n"
            "documents every key). Writes config.yaml, log.jsonl and checkpoints/ under\n"
            "train.output_dir; a killed run continues with --resume auto.\n\n"
            "exit status: 0 finished, 3 stopped by a signal (continue with --resume auto),\n"
            "1 failed (the error says why), 2 usage error.");
  args.option("config", "YAML configuration file", "", true);
  args.repeated("set", "override a key: --set optim.lr=0.05");
  args.option("resume", "checkpoint to continue from, or 'auto' for the run's last.h5");
  args.flag("resume-changed",
            "resume even though the training data or batch settings differ from the checkpoint's");
  if (!args.parse(argv)) return 0;
  TrainOptions options;
  options.config_path = args.get("config");
  options.overrides = args.all("set");
  options.resume = args.get("resume");
  options.resume_changed = args.has("resume-changed");
  const TrainSummary s = train(options);
  if (s.lfw_accuracy >= 0) std::printf("LFW accuracy %.4f ± %.4f\n", s.lfw_accuracy, s.lfw_std);
  return s.finished ? 0 : 3;  // 3: stopped early (a signal), resumable
}

}  // namespace mf::apps
