#include "data/pickle.h"

#include <cstring>
#include <sstream>
#include <unordered_map>

#include "util/error.h"

namespace mf::pickle {

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kBytes:
      return "bytes";
    case Value::Kind::kText:
      return "str";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kGlobal:
      return "global";
    case Value::Kind::kArray:
      return "numpy array";
    case Value::Kind::kDtype:
      return "numpy dtype";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 16;

Ref make(Value::Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

// The globals a validation pack may name (module.name), with numpy ≥ 2's module spelling folded
// onto numpy 1's.
std::string allowed_global(std::string module, const std::string& name) {
  if (module.rfind("numpy._core", 0) == 0) module = "numpy.core" + module.substr(11);
  const std::string full = module + "." + name;
  static const char* allowed[] = {"numpy.core.multiarray._reconstruct",
                                  "numpy.ndarray",
                                  "numpy.dtype",
                                  "numpy.core.numeric._frombuffer",
                                  "numpy.core.multiarray.scalar",
                                  "_codecs.encode",
                                  "__builtin__.bytes",
                                  "builtins.bytes"};
  for (const char* a : allowed)
    if (full == a) return full;
  return "";
}

// UTF-8 text whose code points are all below 256 → one byte per code point (Python's
// str.encode('latin1'), which is how Python 3 pickles bytes at protocol 2). Returns false when a
// code point is ≥ 256 or the UTF-8 is malformed.
bool latin1_bytes(const std::string& utf8, std::string* out) {
  out->clear();
  out->reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<uint8_t>(utf8[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size() &&
               (static_cast<uint8_t>(utf8[i + 1]) & 0xC0) == 0x80) {
      const uint32_t cp = (uint32_t(c & 0x1F) << 6) | (static_cast<uint8_t>(utf8[i + 1]) & 0x3F);
      if (cp >= 256 || cp < 0x80) return false;
      out->push_back(static_cast<char>(cp));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

int64_t itemsize_of(const std::string& dtype) {
  if (dtype == "u1" || dtype == "i1" || dtype == "b1" || dtype == "|u1" || dtype == "|b1" ||
      dtype == "|i1" || dtype == "uint8" || dtype == "bool")
    return 1;
  return 0;
}

std::string dtype_code(const std::string& d) {
  if (d == "|u1" || d == "uint8") return "u1";
  if (d == "|b1" || d == "bool") return "b1";
  if (d == "|i1") return "i1";
  return d;
}

class Machine {
 public:
  Machine(const std::string& file, const std::string& data) : file_(file), data_(data) {}

  Ref run() {
    while (true) {
      at_ = pos_;
      op_ = take_u8();
      switch (op_) {
        case 0x80: {  // PROTO
          const int proto = take_u8();
          check(proto >= 2 && proto <= 5, "pickle protocol ", proto,
                " (validation packs use protocols 2 to 5)");
          break;
        }
        case 0x95:
          take_uint(8);
          break;     // FRAME: a length hint only
        case '.': {  // STOP
          check(stack_.size() == 1 && marks_.empty(), "STOP with ", stack_.size(),
                " values on the stack (expected exactly one)");
          return stack_.back();
        }
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case ']':
          push(make(Value::Kind::kList));
          break;  // EMPTY_LIST
        case ')':
          push(make(Value::Kind::kTuple));
          break;     // EMPTY_TUPLE
        case 'a': {  // APPEND
          Ref item = pop();
          append(top(), item);
          break;
        }
        case 'e': {  // APPENDS
          const size_t mark = pop_mark();
          check(mark >= 1, "APPENDS without a list below its mark");
          Ref list = stack_[mark - 1];
          for (size_t i = mark; i < stack_.size(); ++i) append(list, stack_[i]);
          stack_.resize(mark);
          break;
        }
        case 't': {  // TUPLE
          const size_t mark = pop_mark();
          std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
          stack_.resize(mark);
          push(tuple(std::move(items)));
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          const size_t n = op_ - 0x84;
          check(stack_.size() >= n + floor(), "TUPLE", n, " with fewer than ", n,
                " values on the stack");
          std::vector<Ref> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(tuple(std::move(items)));
          break;
        }
        case 'q':
          memo_[take_u8()] = top();
          break;  // BINPUT
        case 'r':
          memo_[static_cast<uint32_t>(take_uint(4))] = top();
          break;      // LONG_BINPUT
        case 0x94: {  // MEMOIZE
          const auto index = static_cast<uint32_t>(memo_.size());
          memo_[index] = top();
          break;
        }
        case 'h':
          push(memo_get(take_u8()));
          break;  // BINGET
        case 'j':
          push(memo_get(static_cast<uint32_t>(take_uint(4))));
          break;     // LONG_BINGET
        case 'J': {  // BININT
          const auto u = static_cast<uint32_t>(take_uint(4));
          int32_t v;
          std::memcpy(&v, &u, 4);
          push(integer(v));
          break;
        }
        case 'K':
          push(integer(take_u8()));
          break;  // BININT1
        case 'M':
          push(integer(static_cast<int64_t>(take_uint(2))));
          break;      // BININT2
        case 0x8a: {  // LONG1
          const size_t n = take_u8();
          check(n <= 8, "LONG1 of ", n, " bytes (only 64-bit integers are expected here)");
          const std::string b = take_bytes(n);
          uint64_t u = 0;
          for (size_t i = 0; i < n; ++i) u |= uint64_t(static_cast<uint8_t>(b[i])) << (8 * i);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80))
            u |= ~uint64_t(0) << (8 * n);
          int64_t v;
          std::memcpy(&v, &u, 8);
          push(integer(v));
          break;
        }
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          Ref v = make(Value::Kind::kBool);
          v->number = op_ == 0x88;
          push(v);
          break;
        }
        case 'N':
          push(make(Value::Kind::kNone));
          break;
        case 'U':  // SHORT_BINSTRING (Python 2)
        case 'C':
          push(bytes(take_bytes(take_u8())));
          break;   // SHORT_BINBYTES
        case 'T':  // BINSTRING (Python 2)
        case 'B':
          push(bytes(take_bytes(take_uint(4))));
          break;    // BINBYTES
        case 0x8e:  // BINBYTES8
        case 0x96:
          push(bytes(take_bytes(take_uint(8))));
          break;  // BYTEARRAY8
        case 0x8c:
          push(text(take_bytes(take_u8())));
          break;  // SHORT_BINUNICODE
        case 'X':
          push(text(take_bytes(take_uint(4))));
          break;  // BINUNICODE
        case 0x8d:
          push(text(take_bytes(take_uint(8))));
          break;     // BINUNICODE8
        case 'c': {  // GLOBAL
          const std::string module = take_line(), name = take_line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ref name = pop(), module = pop();
          check(name->kind == Value::Kind::kText && module->kind == Value::Kind::kText,
                "STACK_GLOBAL expects two strings");
          push(global(module->bytes, name->bytes));
          break;
        }
        case 'R': {  // REDUCE
          Ref args = pop(), callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': {  // BUILD
          Ref state = pop();
          build(top(), state);
          break;
        }
        default:
          fail("opcode ", hex_byte(op_),
               " is not one a validation pack uses (or the file is not a pickle)");
      }
    }
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    MF_FAIL(file_, ": byte ", at_, " (opcode ", hex_byte(op_), "): ", parts...);
  }
  template <class... Parts>
  void check(bool ok, const Parts&... parts) const {
    if (!ok) fail(parts...);
  }

  uint8_t take_u8() {
    if (pos_ >= data_.size()) {
      at_ = pos_;
      MF_FAIL(file_, ": the pickle ends at byte ", pos_, " without its STOP opcode (truncated?)");
    }
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint64_t take_uint(int n) {
    check(data_.size() - pos_ >= size_t(n), "the file ends inside an argument (truncated?)");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string take_bytes(uint64_t n) {
    check(n <= data_.size() - pos_, "a ", n, "-byte string runs past the end of the file (",
          data_.size(), " bytes; truncated?)");
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string take_line() {
    const size_t end = data_.find('\n', pos_);
    check(end != std::string::npos && end - pos_ < 256, "GLOBAL without a newline-ended name");
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Ref v) { stack_.push_back(std::move(v)); }
  Ref pop() {
    check(stack_.size() > floor(), "the stack is empty here");
    Ref v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top() {
    check(stack_.size() > floor(), "the stack is empty here");
    return stack_.back();
  }
  size_t pop_mark() {
    check(!marks_.empty(), "no MARK to close");
    const size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  Ref memo_get(uint32_t index) {
    auto it = memo_.find(index);
    check(it != memo_.end(), "memo entry ", index, " was never stored");
    return it->second;
  }

  Ref integer(int64_t v) {
    Ref r = make(Value::Kind::kInt);
    r->number = v;
    return r;
  }
  Ref bytes(std::string b) {
    Ref r = make(Value::Kind::kBytes);
    r->bytes = std::move(b);
    return r;
  }
  Ref text(std::string t) {
    Ref r = make(Value::Kind::kText);
    r->bytes = std::move(t);
    return r;
  }
  Ref tuple(std::vector<Ref> items) {
    Ref r = make(Value::Kind::kTuple);
    for (const Ref& item : items) r->depth = std::max(r->depth, item->depth + 1);
    check(r->depth <= kMaxDepth, "tuples nested more than ", kMaxDepth, " deep");
    r->items = std::move(items);
    return r;
  }
  Ref global(const std::string& module, const std::string& name) {
    const std::string full = allowed_global(module, name);
    check(!full.empty(), "refusing the global '", module.substr(0, 64), ".", name.substr(0, 64),
          "': a validation pack only names numpy arrays and byte strings, and this reader never "
          "runs code from a file");
    Ref r = make(Value::Kind::kGlobal);
    r->bytes = full;
    return r;
  }
  void append(Ref& list, const Ref& item) {
    check(list->kind == Value::Kind::kList, "APPEND to a ", kind_name(list->kind), ", not a list");
    check(!item->is_container() && item->kind != Value::Kind::kGlobal, "a list item that is a ",
          kind_name(item->kind), " (validation packs hold images and booleans)");
    list->items.push_back(item);
  }

  const std::string& text_or_bytes(const Ref& v, const char* what) {
    check(v->kind == Value::Kind::kText || v->kind == Value::Kind::kBytes, what,
          " must be a string, got a ", kind_name(v->kind));
    return v->bytes;
  }

  std::vector<int64_t> shape_of(const Ref& v) {
    check(v->kind == Value::Kind::kTuple, "an array shape must be a tuple");
    std::vector<int64_t> shape;
    for (const Ref& d : v->items) {
      check(d->kind == Value::Kind::kInt && d->number >= 0,
            "an array dimension must be a "
            "non-negative int");
      shape.push_back(d->number);
    }
    return shape;
  }

  Ref make_array(const std::vector<int64_t>& shape, const std::string& dtype, std::string data) {
    const int64_t itemsize = itemsize_of(dtype);
    check(itemsize > 0, "numpy dtype '", dtype.substr(0, 16),
          "' (validation packs hold uint8 images and bool flags)");
    uint64_t count = 1;
    for (int64_t d : shape) {
      check(d == 0 || count <= data.size() / uint64_t(d), "array shape larger than its data");
      count *= uint64_t(d);
    }
    check(count * uint64_t(itemsize) == data.size(), "array of ", count, " elements with ",
          data.size(), " data bytes");
    Ref r = make(Value::Kind::kArray);
    r->dtype = dtype_code(dtype);
    r->bytes = std::move(data);
    for (int64_t d : shape) r->items.push_back(integer(d));
    return r;
  }

  Ref reduce(const Ref& callable, const Ref& args) {
    check(callable->kind == Value::Kind::kGlobal, "REDUCE on a ", kind_name(callable->kind));
    check(args->kind == Value::Kind::kTuple, "REDUCE arguments must be a tuple");
    const std::string& f = callable->bytes;
    const auto& a = args->items;
    if (f == "_codecs.encode") {
      check(a.size() == 2 && a[0]->kind == Value::Kind::kText && a[1]->kind == Value::Kind::kText &&
                (a[1]->bytes == "latin1" || a[1]->bytes == "latin-1"),
            "_codecs.encode expects (str, 'latin1')");
      std::string out;
      check(latin1_bytes(a[0]->bytes, &out),
            "_codecs.encode of text with a character beyond "
            "latin-1 (or malformed UTF-8)");
      return bytes(std::move(out));
    }
    if (f == "__builtin__.bytes" || f == "builtins.bytes") {
      check(a.empty(), "bytes() with arguments");
      return bytes("");
    }
    if (f == "numpy.core.multiarray._reconstruct") {
      check(a.size() == 3 && a[0]->kind == Value::Kind::kGlobal && a[0]->bytes == "numpy.ndarray",
            "_reconstruct expects (numpy.ndarray, shape, typecode)");
      Ref r = make(Value::Kind::kArray);  // filled by BUILD
      return r;
    }
    if (f == "numpy.dtype") {
      check(!a.empty(), "numpy.dtype without arguments");
      Ref r = make(Value::Kind::kDtype);
      r->bytes = dtype_code(text_or_bytes(a[0], "a dtype code"));
      return r;
    }
    if (f == "numpy.core.numeric._frombuffer") {
      check(a.size() == 4 && a[0]->kind == Value::Kind::kBytes && a[1]->kind == Value::Kind::kDtype,
            "_frombuffer expects (buffer, dtype, shape, order)");
      return make_array(shape_of(a[2]), a[1]->bytes, a[0]->bytes);
    }
    if (f == "numpy.core.multiarray.scalar") {
      check(a.size() == 2 && a[0]->kind == Value::Kind::kDtype &&
                a[1]->kind == Value::Kind::kBytes && a[1]->bytes.size() == 1,
            "numpy scalar expects (dtype, 1 byte)");
      const auto b = static_cast<uint8_t>(a[1]->bytes[0]);
      if (a[0]->bytes == "b1") {
        Ref r = make(Value::Kind::kBool);
        r->number = b != 0;
        return r;
      }
      check(a[0]->bytes == "u1", "numpy scalar of dtype '", a[0]->bytes.substr(0, 16), "'");
      return integer(b);
    }
    fail("REDUCE on ", f, ", which is not callable here");
  }

  void build(const Ref& target, const Ref& state) {
    if (target->kind == Value::Kind::kDtype) {
      check(state->kind == Value::Kind::kTuple, "dtype state must be a tuple");
      return;  // byte order and flags: meaningless for one-byte types
    }
    check(target->kind == Value::Kind::kArray && target->items.empty() && target->dtype.empty(),
          "BUILD on a ", kind_name(target->kind), " (only numpy arrays and dtypes are built)");
    check(state->kind == Value::Kind::kTuple && state->items.size() == 5,
          "numpy array state must be (version, shape, dtype, fortran, data)");
    const auto& s = state->items;
    check(s[2]->kind == Value::Kind::kDtype, "numpy array state without a dtype");
    check(s[4]->kind == Value::Kind::kBytes, "numpy array data must be bytes, got a ",
          kind_name(s[4]->kind));
    Ref built = make_array(shape_of(s[1]), s[2]->bytes, s[4]->bytes);
    *target = std::move(*built);
  }

  const std::string& file_;
  const std::string& data_;
  size_t pos_ = 0, at_ = 0;
  uint8_t op_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ref> memo_;
};

}  // namespace

Ref load(const std::string& file, const std::string& data) {
  Machine machine(file, data);
  return machine.run();
}

}  // namespace mf::pickle
