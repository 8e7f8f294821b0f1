// A small JSON writer and reader: build a Value tree, then dump() it; parse() reads one back.
// Objects keep insertion order (reports read top-down in the order they were written). Numbers use
// the shortest text that reads back to the same double; NaN and infinities, which JSON cannot
// express, are written as null.
//
//   json::Value report = json::Value::object();
//   report.set("accuracy_mean", 0.9875).set("thresholds", json::Value::array_of(thresholds));
//   json::write_file("out.json", report.dump());
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mf::json {

class Value {
 public:
  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::kBool), bool_(b) {}
  template <std::integral T>
  requires(!std::same_as<T, bool>) Value(T i) : kind_(Kind::kInt), int_(static_cast<int64_t>(i)) {}
  template <std::floating_point T>
  Value(T d) : kind_(Kind::kDouble), double_(static_cast<double>(d)) {}
  Value(const char* s) : kind_(Kind::kString), string_(s) {}
  Value(std::string s) : kind_(Kind::kString), string_(std::move(s)) {}

  static Value array();
  static Value object();
  template <class T>
  static Value array_of(const std::vector<T>& items) {
    Value v = array();
    for (const T& item : items) v.push_back(Value(item));
    return v;
  }

  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  // Objects: the value under `key`, or nullptr when absent (or when this is not an object).
  const Value* find(const std::string& key) const;
  // Scalars; a null reads as NaN (dump() writes non-finite numbers as null). Throw on a mismatch.
  double as_double() const;
  bool as_bool() const;
  int64_t as_int() const;
  const std::string& as_string() const;
  Value& push_back(Value item);                    // arrays only
  Value& set(const std::string& key, Value item);  // objects only; replaces an existing key

  // Pretty-printed with `indent` spaces per level (arrays of scalars stay on one line);
  // indent < 0 gives the compact form.
  std::string dump(int indent = 2) const;

 private:
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  void dump_to(std::string& out, int indent, int depth) const;
  friend class Parser;
  bool is_container() const { return kind_ == Kind::kArray || kind_ == Kind::kObject; }

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  std::vector<std::string> keys_;  // objects
  std::vector<Value> items_;       // array items, or object values parallel to keys_
};

// Parses one JSON text (RFC 8259; surrounding whitespace allowed). Throws mf::Error with the
// byte offset and what was expected; `what` names the source in the message.
Value parse(const std::string& text, const std::string& what = "json");

std::string quote(const std::string& s);  // a JSON string literal, with escapes
std::string number(double d);             // shortest round-trip text; non-finite → "null"

// Writes `text` to `path` through a temporary file renamed over it, so readers never see half a
// file; throws mf::Error naming the path on failure.
void write_file(const std::string& path, const std::string& text);

}  // namespace mf::json
