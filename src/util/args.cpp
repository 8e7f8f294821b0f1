#include "util/args.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "util/error.h"

namespace mf {

void Args::option(const std::string& name, const std::string& help,
                  const std::string& default_value, bool required) {
  order_.push_back(name);
  specs_[name] = Spec{help, default_value, required, false, false};
}

void Args::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{help, "", false, true, false};
}

void Args::repeated(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{help, "", false, false, true};
}

std::string Args::help() const {
  std::ostringstream out;
  out << "usage: marginface " << command_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_flag ? "" : " VALUE");
    out << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << s.help;
    if (s.required)
      out << " (required)";
    else if (!s.default_value.empty())
      out << " (default: " << s.default_value << ")";
    if (s.is_repeated) out << " (repeatable)";
    out << '\n';
  }
  out << "  --help                    show this help\n";
  return out.str();
}

bool Args::parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    MF_CHECK(arg.rfind("--", 0) == 0, "unexpected argument '", arg,
             "' (options start with --; see marginface ", command_, " --help)");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) {
      std::string known;
      for (const auto& n : order_) known += (known.empty() ? "--" : ", --") + n;
      MF_FAIL("unknown option '--", name, "' for '", command_, "' (known: ", known, ")");
    }
    if (it->second.is_flag) {
      MF_CHECK(!inline_value || value == "true" || value == "false", "option --", name,
               " is a flag and takes no value");
      if (value != "false") values_[name].push_back("true");
      continue;
    }
    if (!inline_value) {
      MF_CHECK(i + 1 < argv.size(), "option --", name, " needs a value");
      value = argv[++i];
    }
    if (!it->second.is_repeated) values_[name].clear();
    values_[name].push_back(value);
  }
  for (const auto& name : order_)
    MF_CHECK(!specs_.at(name).required || has(name), "missing required option --", name,
             " (see marginface ", command_, " --help)");
  return true;
}

bool Args::has(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() && !it->second.empty();
}

std::string Args::get(const std::string& name) const {
  auto spec = specs_.find(name);
  MF_CHECK(spec != specs_.end(), "internal: option --", name, " was never declared");
  auto it = values_.find(name);
  return it != values_.end() && !it->second.empty() ? it->second.back()
                                                    : spec->second.default_value;
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int Args::get_int(const std::string& name) const {
  const std::string v = get(name);
  size_t used = 0;
  int result = 0;
  try {
    result = std::stoi(v, &used);
  } catch (...) {
    used = 0;
  }
  MF_CHECK(used == v.size() && !v.empty(), "option --", name, " expects an integer, got '", v, "'");
  return result;
}

double Args::get_double(const std::string& name) const {
  const std::string v = get(name);
  size_t used = 0;
  double result = 0;
  try {
    result = std::stod(v, &used);
  } catch (...) {
    used = 0;
  }
  MF_CHECK(used == v.size() && !v.empty() && std::isfinite(result), "option --", name,
           " expects a finite number, got '", v, "'");
  return result;
}

int Args::get_int(const std::string& name, int lo, int hi) const {
  const int v = get_int(name);
  MF_CHECK(v >= lo && v <= hi, "option --", name, " must be between ", lo, " and ", hi, ", got ",
           v);
  return v;
}

void Args::check_outputs_are_not_inputs(const std::vector<std::string>& outputs,
                                        const std::vector<std::string>& inputs) const {
  namespace fs = std::filesystem;
  for (const auto& out : outputs) {
    if (!has(out)) continue;
    const std::string target = get(out);
    std::error_code ec;
    if (target.empty() || !fs::exists(target, ec)) continue;  // a new file cannot be an input
    for (const auto& in : inputs)
      for (const auto& source : all(in)) {
        MF_CHECK(source.empty() || !fs::exists(source, ec) || !fs::equivalent(target, source, ec),
                 "--", out, " ", target, " is the file given to --", in,
                 "; refusing to overwrite an input (choose another output path)");
      }
  }
}

}  // namespace mf
