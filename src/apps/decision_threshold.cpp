#include "apps/decision_threshold.h"

#include "eval/verification.h"
#include "util/error.h"

namespace mf::apps {

void add_threshold_options(Args& args) {
  args.option("threshold", "decision threshold on the cosine similarity");
  args.option("threshold-at-far",
              "decide at the threshold of this false-accept rate (0.01, 0.001 or 0.0001) in "
              "--calibration");
  args.option("calibration", "an `eval --lfw|--pairs ... --json` report (its operating_points)");
}

std::optional<DecisionThreshold> resolve_threshold(const Args& args, const CheckpointMeta& meta,
                                                   const std::string& checkpoint, bool required) {
  MF_CHECK(!(args.has("threshold") && args.has("threshold-at-far")),
           "give --threshold or --threshold-at-far, not both");
  MF_CHECK(args.has("threshold-at-far") == args.has("calibration"),
           "--threshold-at-far and --calibration go together (the FAR, and the eval report that "
           "measured it)");
  if (args.has("threshold")) return DecisionThreshold{args.get_double("threshold"), "--threshold"};
  if (args.has("threshold-at-far")) {
    const double far = args.get_double("threshold-at-far");
    MF_CHECK(far > 0 && far < 1, "--threshold-at-far must be in (0, 1), got ", far);
    const std::string report = args.get("calibration");
    return DecisionThreshold{eval::threshold_at_far_from_json(report, far),
                             "FAR " + eval::far_text(far) + " in " + report};
  }
  if (meta.verification_threshold)
    return DecisionThreshold{*meta.verification_threshold,
                             checkpoint + " /meta verification_threshold" +
                                 (meta.verification_threshold_source.empty()
                                      ? ""
                                      : ": " + meta.verification_threshold_source)};
  MF_CHECK(!required, checkpoint,
           " stores no verification threshold: pass --threshold T, or --threshold-at-far 0.001 "
           "--calibration eval.json, or store one with `marginface eval --checkpoint ",
           checkpoint,
           " --lfw pairs.txt --root DIR --store-threshold` (or --store-threshold-at-far "
           "0.001)");
  return std::nullopt;
}

}  // namespace mf::apps
