#include "data/bin_pack.h"

#include <filesystem>

#include "data/pickle.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace mf {

namespace {

void put_u32(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

BinPack read_bin_pack(const std::string& path) {
  using Kind = pickle::Value::Kind;
  MF_CHECK(std::filesystem::is_regular_file(path),
           "validation pack not found (or not a file): ", path);
  const std::string data = read_file(path, "validation pack");
  MF_CHECK(!data.empty(), path, ": empty file");
  const pickle::Ref root = pickle::load(path, data);
  MF_CHECK(root->kind == Kind::kTuple && root->items.size() == 2, path,
           ": expected the tuple (bins, issame_list), found a ", pickle::kind_name(root->kind),
           root->is_container() ? " of " + std::to_string(root->items.size()) + " items" : "");
  const pickle::Ref& bins = root->items[0];
  const pickle::Ref& flags = root->items[1];
  MF_CHECK(bins->kind == Kind::kList, path, ": bins must be a list, found a ",
           pickle::kind_name(bins->kind));
  BinPack pack;
  pack.path = path;
  pack.images.reserve(bins->items.size());
  for (size_t i = 0; i < bins->items.size(); ++i) {
    const pickle::Ref& b = bins->items[i];
    MF_CHECK(b->kind == Kind::kBytes || (b->kind == Kind::kArray && b->dtype == "u1"), path,
             ": bins[", i, "] is a ", pickle::kind_name(b->kind),
             ", not an encoded image (bytes or a uint8 array)");
    // A pickle may list one object twice (memo); move only what nothing else shares.
    pack.images.push_back(b.use_count() == 1 ? std::move(b->bytes) : b->bytes);
  }
  if (flags->kind == Kind::kArray) {
    MF_CHECK(flags->dtype == "b1", path, ": issame_list is an array of dtype '", flags->dtype,
             "', expected bool");
    for (char c : flags->bytes) pack.same.push_back(c != 0);
  } else {
    MF_CHECK(flags->kind == Kind::kList, path, ": issame_list must be a list of booleans, found a ",
             pickle::kind_name(flags->kind));
    for (size_t i = 0; i < flags->items.size(); ++i) {
      const pickle::Ref& f = flags->items[i];
      MF_CHECK(
          f->kind == Kind::kBool || (f->kind == Kind::kInt && (f->number == 0 || f->number == 1)),
          path, ": issame_list[", i, "] is a ", pickle::kind_name(f->kind), ", not a boolean");
      pack.same.push_back(f->number != 0);
    }
  }
  MF_CHECK(pack.images.size() % 2 == 0, path, ": ", pack.images.size(),
           " images, an odd count (pair i is images 2i and 2i+1)");
  MF_CHECK(pack.images.size() == 2 * pack.same.size(), path, ": ", pack.images.size(),
           " images make ", pack.images.size() / 2, " pairs, but issame_list has ",
           pack.same.size(), " flags");
  MF_CHECK(!pack.same.empty(), path, ": the pack holds no pairs");
  return pack;
}

// Protocol 4 without frames (framing is optional for readers): PROTO 4, EMPTY_LIST, then the
// images as BINBYTES in APPENDS batches of 1000 (as Python's pickler batches), the flags as
// NEWTRUE/NEWFALSE likewise, TUPLE2, STOP.
void write_bin_pack(const std::string& path, const std::vector<std::string>& images,
                    const std::vector<uint8_t>& same) {
  MF_CHECK(images.size() == 2 * same.size() && !same.empty(), path, ": ", images.size(),
           " images for ", same.size(), " pairs");
  std::string out = "\x80\x04";
  auto list = [&](size_t n, auto&& put_item) {
    out.push_back(']');
    for (size_t start = 0; start < n; start += 1000) {
      out.push_back('(');
      for (size_t i = start; i < std::min(n, start + 1000); ++i) put_item(i);
      out.push_back('e');
    }
  };
  list(images.size(), [&](size_t i) {
    const std::string& b = images[i];
    if (b.size() < 256) {
      out.push_back('C');
      put_u32(out, b.size(), 1);
    } else if (b.size() <= 0xFFFFFFFFull) {
      out.push_back('B');
      put_u32(out, b.size(), 4);
    } else {
      out.push_back('\x8e');
      put_u32(out, b.size(), 8);
    }
    out += b;
  });
  list(same.size(), [&](size_t i) { out.push_back(same[i] ? '\x88' : '\x89'); });
  out.push_back('\x86');
  out.push_back('.');
  json::write_file(path, out);
}

}  // namespace mf
