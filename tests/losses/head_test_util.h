// Helpers shared by the head tests: building a head by name from "key=value" strings, reaching its
// parameters by state_dict name, and a float32 gradient check through the head's own Module path.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "losses/head.h"
#include "support/gradcheck.h"
#include "util/params.h"

namespace mf::test {

inline Params params_from(const std::vector<std::string>& key_values) {
  Params p("head");
  for (const std::string& kv : key_values) {
    const size_t eq = kv.find('=');
    p.set(kv.substr(0, eq), kv.substr(eq + 1), "test");
  }
  return p;
}

inline std::unique_ptr<Head> make_head(const std::string& type,
                                       const std::vector<std::string>& key_values, int64_t D,
                                       int64_t K, uint64_t seed = 1) {
  Rng rng(seed);
  return head_registry().create(type, params_from(key_values), D, K, rng);
}

// The parameter `name` of a head (a handle sharing its state), or an undefined Var.
inline Var parameter(const Head& head, const std::string& name) {
  for (const auto& [n, v] : head.named_parameters())
    if (n == name) return v;
  return Var();
}

// check_var_gradients over the embeddings and every trainable parameter of `head`. The checker
// perturbs and reads gradients of its own Vars; each call of f points the head's parameter at the
// checker's value storage and gradient buffer, so perturbations reach the head through its
// ordinary forward and its parameter gradients land where the checker reads them.
inline ::testing::AssertionResult check_head_gradients(Head& head, const Tensor& x,
                                                       const Labels& labels, const StepInfo& step,
                                                       const VarGradCheckOptions& options) {
  std::vector<Var> params = head.parameters();
  std::vector<Tensor> inputs{x};
  for (const Var& p : params) inputs.push_back(p.value().clone());
  auto f = [&](const std::vector<Var>& in) {
    for (size_t i = 0; i < params.size(); ++i) {
      Var checker = in[i + 1];
      if (!checker.grad().defined()) checker.grad() = Tensor::zeros(checker.shape());
      params[i].value() = checker.value();
      params[i].grad() = checker.grad();
    }
    return head.forward(in[0], labels, step).loss;
  };
  return check_var_gradients(f, inputs, options);
}

}  // namespace mf::test
