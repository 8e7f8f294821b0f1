// Command-line options for subcommands: `--name value`, `--name=value` and boolean `--flag`.
// Every option is declared with a help line; --help prints them, an unknown option is an error
// that lists the known ones.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace mf {

class Args {
 public:
  Args(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)) {}

  // Declarations (call before parse). A default of "" with required=true makes it mandatory.
  void option(const std::string& name, const std::string& help,
              const std::string& default_value = "", bool required = false);
  void flag(const std::string& name, const std::string& help);
  void repeated(const std::string& name, const std::string& help);  // may be given several times

  // Returns false when --help was asked (the help text has been printed).
  bool parse(const std::vector<std::string>& argv);

  std::string get(const std::string& name) const;
  bool has(const std::string& name) const;  // given on the command line (or a flag set)
  bool flag_set(const std::string& name) const { return has(name); }
  std::vector<std::string> all(const std::string& name) const;
  // Refuses to run when an output option names the same file as an input option ("--out is the
  // file given to --checkpoint"), before anything is written: outputs never overwrite inputs.
  void check_outputs_are_not_inputs(const std::vector<std::string>& outputs,
                                    const std::vector<std::string>& inputs) const;
  int get_int(const std::string& name) const;
  // The same, required to lie in [lo, hi] ("--threads must be between 0 and 1024, got -1").
  int get_int(const std::string& name, int lo, int hi) const;
  double get_double(const std::string& name) const;
  std::string help() const;

 private:
  struct Spec {
    std::string help, default_value;
    bool required = false, is_flag = false, is_repeated = false;
  };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace mf
