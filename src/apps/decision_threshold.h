// The same/different threshold of `compare` and `search`: given (--threshold), read at a FAR from
// an `eval --json` report (--threshold-at-far F --calibration eval.json), or stored in the
// checkpoint (`eval --store-threshold` / `--store-threshold-at-far`).
#pragma once

#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "util/args.h"

namespace mf::apps {

struct DecisionThreshold {
  double value = 0;
  std::string source;  // for the output: where the number came from
};

void add_threshold_options(Args& args);

// nullopt when no option is given and the checkpoint stores none; with `required`, that is an
// error telling how to get one.
std::optional<DecisionThreshold> resolve_threshold(const Args& args, const CheckpointMeta& meta,
                                                   const std::string& checkpoint, bool required);

}  // namespace mf::apps
