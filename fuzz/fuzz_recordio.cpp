// The RecordIO reader: bytes as a .rec → reindex (scan every record) → the training-pack view
// (meta and identity records, labels) → every image record read back. Only mf::Error may come out.
#include <cstdint>
#include <filesystem>

#include "data/recordio.h"
#include "fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string rec = mf::fuzz::write_input("train.rec", data, size);
  const std::string idx = mf::fuzz::scratch("train.idx");
  std::filesystem::remove(idx);
  try {
    mf::recordio::reindex(rec, idx);
    const mf::recordio::Reader reader(rec);
    const mf::recordio::TrainingPack pack = mf::recordio::open_training_pack(rec, reader);
    for (size_t i = 0; i < pack.offsets.size() && i < 64; ++i) {
      const auto payload = reader.read(pack.offsets[i], nullptr, int64_t(pack.keys[i]));
      mf::recordio::parse_header(payload.data(), payload.size(), "fuzz");
    }
  } catch (const mf::Error&) {
  }
  return 0;
}
