// The .bin validation-pack reader: our pickle VM (pickle::load) and the pack layout on top of it
// (read_bin_pack, read_bin_pairs). Only mf::Error may come out.
#include <cstdint>
#include <string>

#include "data/bin_pack.h"
#include "data/pickle.h"
#include "eval/pairs.h"
#include "fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    mf::pickle::load("fuzz.bin", std::string(reinterpret_cast<const char*>(data), size));
  } catch (const mf::Error&) {
  }
  const std::string path = mf::fuzz::write_input("fuzz.bin", data, size);
  try {
    mf::read_bin_pack(path);
    mf::eval::read_bin_pairs(path);
  } catch (const mf::Error&) {
  }
  return 0;
}
