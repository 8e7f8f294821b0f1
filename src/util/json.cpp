#include "util/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "util/error.h"
#include "util/file.h"

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

const Value* Value::find(const std::string& key) const {
  if (kind_ != Kind::kObject) return nullptr;
  for (size_t i = 0; i < keys_.size(); ++i)
    if (keys_[i] == key) return &items_[i];
  return nullptr;
}

double Value::as_double() const {
  if (kind_ == Kind::kInt) return static_cast<double>(int_);
  if (kind_ == Kind::kNull) return std::nan("");
  MF_CHECK(kind_ == Kind::kDouble, "json: expected a number");
  return double_;
}

bool Value::as_bool() const {
  MF_CHECK(kind_ == Kind::kBool, "json: expected true or false");
  return bool_;
}

int64_t Value::as_int() const {
  if (kind_ == Kind::kDouble && double_ == std::floor(double_) && std::abs(double_) < 9e18)
    return static_cast<int64_t>(double_);
  MF_CHECK(kind_ == Kind::kInt, "json: expected an integer");
  return int_;
}

const std::string& Value::as_string() const {
  MF_CHECK(kind_ == Kind::kString, "json: expected a string");
  return string_;
}

// Recursive descent over the grammar of RFC 8259 §2-7.
class Parser {
 public:
  Parser(const std::string& text, const std::string& what) : text_(text), what_(what) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (pos_ != text_.size()) fail("the end of the text");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* expected) const {
    MF_FAIL(what_, ": invalid JSON at byte ", pos_, ": expected ", expected);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool word(const char* w) {
    const size_t n = std::char_traits<char>::length(w);
    if (text_.compare(pos_, n, w) != 0) return false;
    pos_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > 256) fail("less nesting (over 256 levels)");
    skip_space();
    if (pos_ >= text_.size()) fail("a value");
    const char c = text_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value(string());
    if (word("true")) return Value(true);
    if (word("false")) return Value(false);
    if (word("null")) return Value();
    return number_value();
  }

  Value object(int depth) {
    ++pos_;  // '{'
    Value v = Value::object();
    if (eat('}')) return v;
    do {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') fail("a key string");
      std::string key = string();
      if (!eat(':')) fail("':'");
      v.keys_.push_back(std::move(key));
      v.items_.push_back(value(depth + 1));
    } while (eat(','));
    if (!eat('}')) fail("',' or '}'");
    return v;
  }

  Value array(int depth) {
    ++pos_;  // '['
    Value v = Value::array();
    if (eat(']')) return v;
    do v.items_.push_back(value(depth + 1));
    while (eat(','));
    if (!eat(']')) fail("',' or ']'");
    return v;
  }

  unsigned hex4() {
    if (pos_ + 4 > text_.size()) fail("four hex digits");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      u <<= 4;
      if (h >= '0' && h <= '9')
        u |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f')
        u |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        u |= unsigned(h - 'A' + 10);
      else
        fail("a hex digit");
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    ++pos_;  // '"'
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) fail("a closing '\"'");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("an escaped control character");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("an escape");
      switch (text_[pos_++]) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair (RFC 8259 §7)
            if (!word("\\u")) fail("the low half of a surrogate pair");
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("the low half of a surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          fail("one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
      }
    }
  }

  Value number_value() {
    const size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (digits() == 0) fail("a value");
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) fail("a digit after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("an exponent");
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (integral) {
      int64_t i = 0;
      if (std::from_chars(first, last, i).ec == std::errc()) return Value(i);
    }
    double d = 0;
    std::from_chars(first, last, d);
    return Value(d);
  }

  const std::string& text_;
  const std::string& what_;
  size_t pos_ = 0;
};

Value parse(const std::string& text, const std::string& what) {
  return Parser(text, what).document();
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
  write_file_atomically(path, text);
}

}  // namespace mf::json
