#include "util/params.h"

#include <algorithm>
#include <climits>
#include <sstream>

#include "util/error.h"

namespace mf {

namespace {
thread_local Params::KeyRecorder* g_recorder = nullptr;

std::string number_text(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}
}  // namespace

Params::KeyRecorder::KeyRecorder() : previous_(g_recorder) {
  g_recorder = this;
}
Params::KeyRecorder::~KeyRecorder() {
  g_recorder = previous_;
}

void Params::record_default(const std::string& key, const std::string& def) const {
  if (!g_recorder) return;
  std::string name;
  if (!context_.empty()) name.append(context_).append(".");
  name.append(key);
  g_recorder->keys_.emplace(name, def);
}

void Params::set(const std::string& key, const std::string& value, const std::string& where) {
  values_[key] = Entry{value, where};
}

std::vector<std::string> Params::keys() const {
  std::vector<std::string> k;
  for (const auto& [key, e] : values_) k.push_back(key);
  return k;
}

const Params::Entry* Params::lookup(const std::string& key) const {
  read_.insert(key);
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

std::string Params::describe(const std::string& key) const {
  // Built with append(): GCC 12 at -O3 raises a false -Wrestrict on `a + "." + b` (bug 105651).
  std::string name;
  if (!context_.empty()) name.append(context_).append(".");
  name.append(key);
  auto it = values_.find(key);
  if (it != values_.end() && !it->second.where.empty())
    name.append(" (").append(it->second.where).append(")");
  return name;
}

double Params::get_double(const std::string& key, double def, double lo, double hi) const {
  record_default(key, number_text(def));
  const Entry* e = lookup(key);
  double v = def;
  if (e) {
    size_t used = 0;
    try {
      v = std::stod(e->value, &used);
    } catch (...) {
      used = 0;
    }
    MF_CHECK(used == e->value.size() && !e->value.empty(), describe(key),
             ": expected a number, got '", e->value, "'");
  }
  MF_CHECK(v >= lo && v <= hi, describe(key), " = ", v, " is out of range [", lo, ", ", hi, "]");
  return v;
}

double Params::get_double_open_low(const std::string& key, double def, double lo, double hi) const {
  const double v = get_double(key, def);
  MF_CHECK(v > lo && v <= hi, describe(key), " = ", v, " is out of range (", lo, ", ", hi, "]");
  return v;
}

int64_t Params::get_int(const std::string& key, int64_t def, int64_t lo, int64_t hi) const {
  record_default(key, std::to_string(def));
  const Entry* e = lookup(key);
  int64_t v = def;
  if (e) {
    size_t used = 0;
    try {
      v = std::stoll(e->value, &used);
    } catch (...) {
      used = 0;
    }
    MF_CHECK(used == e->value.size() && !e->value.empty(), describe(key),
             ": expected an integer, got '", e->value, "'");
  }
  MF_CHECK(v >= lo && v <= hi, describe(key), " = ", v, " is out of range [", lo, ", ", hi, "]");
  return v;
}

bool Params::get_bool(const std::string& key, bool def) const {
  record_default(key, def ? "true" : "false");
  const Entry* e = lookup(key);
  if (!e) return def;
  std::string v = e->value;
  std::transform(v.begin(), v.end(), v.begin(), ::tolower);
  if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return false;
  MF_FAIL(describe(key), ": expected true or false, got '", e->value, "'");
}

std::string Params::get_string(const std::string& key, const std::string& def,
                               const std::vector<std::string>& allowed) const {
  record_default(key, def);
  const Entry* e = lookup(key);
  const std::string v = e ? e->value : def;
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
    std::ostringstream list;
    for (size_t i = 0; i < allowed.size(); ++i) list << (i ? ", " : "") << allowed[i];
    MF_FAIL(describe(key), ": '", v, "' is not one of: ", list.str());
  }
  return v;
}

std::vector<std::string> Params::get_list(const std::string& key) const {
  record_default(key, "[]");
  const Entry* e = lookup(key);
  std::vector<std::string> out;
  if (!e) return out;
  std::string text = e->value;
  const auto first = text.find_first_not_of(" \t");
  if (first != std::string::npos && text[first] == '[') {
    const auto last = text.find_last_of(']');
    MF_CHECK(last != std::string::npos && last > first, describe(key), ": unterminated list '",
             text, "'");
    text = text.substr(first + 1, last - first - 1);
  }
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    const auto a = item.find_first_not_of(" \t\"'"), b = item.find_last_not_of(" \t\"'");
    if (a == std::string::npos) continue;
    out.push_back(item.substr(a, b - a + 1));
  }
  return out;
}

Params Params::except(const std::vector<std::string>& keys) const {
  Params out(context_);
  for (const auto& [key, e] : values_) {
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    out.values_[key] = e;
    read_.insert(key);
  }
  return out;
}

void Params::finish(const std::string& what) const {
  for (const auto& [key, e] : values_) {
    if (read_.count(key)) continue;
    std::ostringstream known;
    bool first = true;
    for (const auto& k : read_) {
      known << (first ? "" : ", ") << k;
      first = false;
    }
    MF_FAIL("unknown key '", describe(key), "' for ", what, " (known: ", known.str(), ")");
  }
}

}  // namespace mf
