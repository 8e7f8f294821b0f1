// A safe reader for the Python pickles that carry insightface's validation packs (lfw.bin,
// cfp_fp.bin, agedb_30.bin, …). It understands the opcodes of pickle protocols 2–5 that those
// packs use and exactly these globals — nothing is ever called:
//   numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype   (numpy arrays, protocol 2–4)
//   numpy.core.numeric._frombuffer                                  (numpy arrays, protocol 5)
//   numpy.core.multiarray.scalar                                    (numpy bool scalars)
//   _codecs.encode                                                  (Python 3 bytes, protocol 2)
//   __builtin__.bytes / builtins.bytes                              (empty bytes, protocol 2)
// (numpy ≥ 2 spells the modules numpy._core.*; both are accepted.) Any other global, opcode or
// inconsistency is an mf::Error naming the file, the byte offset and the opcode.
//
// Limits that keep hostile input harmless: lengths are checked against the bytes left, lists hold
// only scalars (no cycles can form), tuples nest at most 16 deep.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mf::pickle {

struct Value;
using Ref = std::shared_ptr<Value>;

struct Value {
  enum class Kind { kNone, kBool, kInt, kBytes, kText, kList, kTuple, kGlobal, kArray, kDtype };
  Kind kind = Kind::kNone;
  int64_t number = 0;      // kBool (0/1), kInt
  std::string bytes;       // kBytes raw bytes, kText UTF-8, kGlobal "module.name", kArray data,
                           // kDtype its code ("u1", "b1", …)
  std::vector<Ref> items;  // kList, kTuple; kArray: its shape as kInt values
  std::string dtype;       // kArray: element code
  int depth = 0;           // nesting of tuples

  bool is_container() const { return kind == Kind::kList || kind == Kind::kTuple; }
};

const char* kind_name(Value::Kind kind);

// Unpickles `data`; `file` names it in messages.
Ref load(const std::string& file, const std::string& data);

}  // namespace mf::pickle
