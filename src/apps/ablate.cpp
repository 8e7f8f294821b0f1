// `marginface ablate --config configs/ablation_small.yaml [--only a,b] [--fresh] [--output DIR]`
#include <cstdio>
#include <sstream>

#include "apps/commands.h"
#include "train/ablation.h"
#include "util/args.h"

namespace mf::apps {

int run_ablate(const std::vector<std::string>& argv) {
  Args args("ablate",
            "Trains every head listed under ablation.heads with the same data, backbone, seed,\n"
            "schedule and step budget, evaluates each by the protocol (LFW View 2 or View 1), and\n"
            "writes results.md, results.json and PNG plots to ablation.output_dir. A killed\n"
            "ablation continues where it stopped when run again; finished heads are kept.");
  args.option("config", "ablation config (a training config plus an 'ablation' section)", "", true);
  args.repeated("set", "override a key for every head: --set train.max_steps=100");
  args.option("only", "comma-separated heads to train now (the table lists every finished one)");
  args.flag("fresh", "retrain the selected heads from scratch (all heads without --only)");
  args.option("output", "output folder instead of ablation.output_dir");
  args.flag("check", "validate every head's config and the protocol, then stop");
  if (!args.parse(argv)) return 0;
  AblationOptions options;
  options.config_path = args.get("config");
  options.overrides = args.all("set");
  options.fresh = args.flag_set("fresh");
  options.output_dir = args.get("output");
  options.check_only = args.flag_set("check");
  std::stringstream only(args.get("only"));
  for (std::string name; std::getline(only, name, ',');)
    if (!name.empty()) options.only.push_back(name);
  const AblationReport report = run_ablation(options);
  if (options.check_only) return 0;
  std::printf(
      "\n%s\n%s in %s (results.md, results.json, *.png)\n", report.table.c_str(),
      report.complete ? "ablation complete" : "ablation incomplete: some heads not trained yet",
      report.output_dir.c_str());
  return 0;
}

}  // namespace mf::apps
