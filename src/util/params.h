// Named parameters for things built by name (heads, backbones, optimizers, schedules).
//
// A Params holds key → text values, each with the place it came from ("configs/a.yaml:14:3" or
// "--set"). Builders read keys through typed getters that apply a default and check the range;
// every error names the key, where it was set, the value and the allowed range. After building,
// finish() rejects any key nobody read ("unknown key 'marign' for head 'arcface' (known: m, s)").
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace mf {

class Params {
 public:
  // While a KeyRecorder lives (on this thread), every getter call records the full key
  // ("data.batch_size") and its default as text: a test compares configs/reference.yaml with
  // what the code actually reads.
  class KeyRecorder {
   public:
    KeyRecorder();
    ~KeyRecorder();
    KeyRecorder(const KeyRecorder&) = delete;
    KeyRecorder& operator=(const KeyRecorder&) = delete;
    const std::map<std::string, std::string>& keys() const { return keys_; }

   private:
    friend class Params;
    std::map<std::string, std::string> keys_;
    KeyRecorder* previous_;
  };

  Params() = default;
  explicit Params(std::string context) : context_(std::move(context)) {}  // e.g. "head"

  void set(const std::string& key, const std::string& value, const std::string& where = "");
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::vector<std::string> keys() const;

  // Typed reads with defaults. Ranges are inclusive unless the name says open.
  double get_double(const std::string& key, double def, double lo = -1e300,
                    double hi = 1e300) const;
  // (lo, hi]: excludes lo — for "s > 0" style constraints.
  double get_double_open_low(const std::string& key, double def, double lo,
                             double hi = 1e300) const;
  int64_t get_int(const std::string& key, int64_t def, int64_t lo = INT64_MIN,
                  int64_t hi = INT64_MAX) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def,
                         const std::vector<std::string>& allowed = {}) const;

  // A list written as YAML flow text ("[a, b]") or a single value ("a"); items are trimmed of
  // spaces and quotes. Empty when the key is absent.
  std::vector<std::string> get_list(const std::string& key) const;

  // A copy holding every key except `keys`, for a sub-builder (e.g. the head's own parameters
  // without head.type). The copied keys count as read here; the copy tracks its own reads.
  Params except(const std::vector<std::string>& keys) const;

  // Throws if a key was set that no getter read.
  void finish(const std::string& what) const;
  // "head.m (configs/a.yaml:14:3)"
  std::string describe(const std::string& key) const;

 private:
  struct Entry {
    std::string value, where;
  };
  const Entry* lookup(const std::string& key) const;
  void record_default(const std::string& key, const std::string& def) const;
  std::string context_;
  std::map<std::string, Entry> values_;
  mutable std::set<std::string> read_;
};

}  // namespace mf
