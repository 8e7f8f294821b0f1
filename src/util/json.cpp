#include "util/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "util/error.h"

namespace mf::json {

Value Value::array() {
  Value v;
  v.kind_ = Kind::kArray;
  return v;
}

Value Value::object() {
  Value v;
  v.kind_ = Kind::kObject;
  return v;
}

Value& Value::push_back(Value item) {
  MF_CHECK(kind_ == Kind::kArray, "json: push_back on a value that is not an array");
  items_.push_back(std::move(item));
  return *this;
}

Value& Value::set(const std::string& key, Value item) {
  MF_CHECK(kind_ == Kind::kObject, "json: set(\"", key, "\") on a value that is not an object");
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) {
      items_[i] = std::move(item);
      return *this;
    }
  }
  keys_.push_back(key);
  items_.push_back(std::move(item));
  return *this;
}

std::string quote(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;  // UTF-8 passes through unchanged
        }
    }
  }
  out += '"';
  return out;
}

std::string number(double d) {
  if (!std::isfinite(d)) return "null";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, d);
  MF_CHECK(result.ec == std::errc(), "json: cannot format number ", d);
  return std::string(buf, result.ptr);
}

std::string Value::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  if (indent >= 0) out += '\n';
  return out;
}

void Value::dump_to(std::string& out, int indent, int depth) const {
  switch (kind_) {
    case Kind::kNull:
      out += "null";
      return;
    case Kind::kBool:
      out += bool_ ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(int_);
      return;
    case Kind::kDouble:
      out += number(double_);
      return;
    case Kind::kString:
      out += quote(string_);
      return;
    case Kind::kArray:
    case Kind::kObject:
      break;
  }
  const bool is_object = kind_ == Kind::kObject;
  const char open = is_object ? '{' : '[', close = is_object ? '}' : ']';
  if (items_.empty()) {
    out += open;
    out += close;
    return;
  }
  bool flat = indent < 0;
  if (!is_object && !flat) {
    flat = true;
    for (const Value& item : items_) flat = flat && !item.is_container();
  }
  out += open;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (i) out += (flat && indent >= 0) ? ", " : ",";
    if (!flat) {
      out += '\n';
      out.append(size_t(depth + 1) * indent, ' ');
    }
    if (is_object) {
      out += quote(keys_[i]);
      out += indent >= 0 ? ": " : ":";
    }
    items_[i].dump_to(out, indent, depth + 1);
  }
  if (!flat) {
    out += '\n';
    out.append(size_t(depth) * indent, ' ');
  }
  out += close;
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MF_CHECK(out.good(), "cannot write ", path, " (opening ", tmp, " failed)");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    MF_CHECK(out.good(), "error writing ", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string reason = ec.message();
    std::filesystem::remove(tmp, ec);
    MF_FAIL("cannot write ", path, ": renaming ", tmp, " failed: ", reason);
  }
}

}  // namespace mf::json
