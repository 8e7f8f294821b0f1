#include "util/file.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace mf {

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in.good(), "cannot open ", what, " ", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  MF_CHECK(!in.bad(), "error reading ", what, " ", path);
  return bytes.str();
}

}  // namespace mf
