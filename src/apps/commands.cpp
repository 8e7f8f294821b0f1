#include "apps/commands.h"

namespace mf::apps {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "show the build, thread and BLAS configuration", run_info},
  };
  return table;
}

}  // namespace mf::apps
