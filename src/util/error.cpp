#include "util/error.h"

#include <cstring>

namespace mf::detail {

void throw_error(const char* file, int line, const std::string& message) {
  // Keep only the path below src/ so messages read the same on every machine.
  const char* shown = std::strstr(file, "src/");
  throw Error(message + "  [" + (shown ? shown : file) + ":" + std::to_string(line) + "]");
}

}  // namespace mf::detail
