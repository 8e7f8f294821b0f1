// The subcommands of `marginface`: a name → function table (Caffe's CLI idea, without static
// registration). Each command parses its own options with mf::Args and returns the exit code.
#pragma once

#include <string>
#include <vector>

namespace mf::apps {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& commands();

int run_info(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);
int run_ablate(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_embed(const std::vector<std::string>& args);
int run_pack(const std::vector<std::string>& args);
int run_align(const std::vector<std::string>& args);
int run_compare(const std::vector<std::string>& args);
int run_search(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_describe(const std::vector<std::string>& args);
int run_clean(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);

}  // namespace mf::apps
