// The config loader: YAML text → Config → every training setting (read_train_settings), the
// path `marginface train` takes before any work. Only mf::Error may come out.
#include <cstdint>
#include <string>

#include "io/config.h"
#include "train/settings.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const mf::Config config = mf::Config::parse(text, "fuzz.yaml");
    (void)config.to_yaml();
    mf::read_train_settings(config);
  } catch (const mf::Error&) {
  }
  return 0;
}
