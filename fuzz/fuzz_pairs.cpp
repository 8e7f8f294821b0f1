// Both pair-list parsers (LFW pairs.txt / pairsDevTest.txt, and the generic "a b label [fold]"
// list) on the same bytes. Only mf::Error may come out.
#include <cstdint>

#include "eval/pairs.h"
#include "fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input("pairs.txt", data, size);
  try {
    mf::eval::read_lfw_pairs(path, "/lfw");
  } catch (const mf::Error&) {
  }
  try {
    mf::eval::read_generic_pairs(path, "/images");
  } catch (const mf::Error&) {
  }
  return 0;
}
