// The graph tracer `marginface export` relies on: every op reports its inputs, output and
// attributes, in order, whatever the grad mode; nothing is reported without a tracer.
#include <gtest/gtest.h>

#include "autograd/ops.h"

namespace mf::test {
namespace {

struct Seen {
  std::string op;
  std::vector<const VarState*> inputs;
  const VarState* output;
  std::map<std::string, double> numbers;
  std::map<std::string, const float*> tensors;
};

class ListTracer : public OpTracer {
 public:
  void on_op(const char* op, const std::vector<Var>& inputs, const Var& output,
             std::initializer_list<OpAttribute> attributes) override {
    Seen s{op, {}, output.state().get(), {}, {}};
    for (const Var& v : inputs) s.inputs.push_back(v.state().get());
    for (const OpAttribute& a : attributes) {
      if (a.tensor.defined())
        s.tensors[a.name] = a.tensor.data();
      else
        s.numbers[a.name] = a.number;
    }
    seen.push_back(s);
  }
  std::vector<Seen> seen;
};

TEST(Trace, ops_report_inputs_outputs_and_attributes_in_order) {
  Var x(Tensor::full({2, 3, 6, 6}, 0.5f));
  Var w(Tensor::full({4, 3, 3, 3}, 0.1f), true);
  Tensor mean = Tensor::zeros({4}), var = Tensor::full({4}, 1.0f);
  Var gamma(Tensor::full({4}, 1.0f)), beta(Tensor::zeros({4}));
  ListTracer tracer;
  Var y, z, p;
  {
    TraceGuard guard(tracer);
    y = conv2d(x, w, Var(), {.stride = 2, .pad = 1, .groups = 1});
    z = batch_norm(y, gamma, beta, mean, var, {.training = false, .momentum = 0.1f, .eps = 1e-3f});
    Rng rng(1);
    Var same = dropout(z, 0.5f, /*training=*/false, rng);  // identity: reports nothing
    EXPECT_EQ(same.state(), z.state());
    p = max_pool2d(z, 3, 2, 1);
  }
  relu(p);  // after the guard: not seen
  ASSERT_EQ(tracer.seen.size(), 3u);
  const Seen& c = tracer.seen[0];
  EXPECT_EQ(c.op, "conv2d");
  EXPECT_EQ(c.inputs, (std::vector<const VarState*>{x.state().get(), w.state().get()}));
  EXPECT_EQ(c.output, y.state().get());
  EXPECT_EQ(c.numbers.at("stride"), 2.0);
  EXPECT_EQ(c.numbers.at("pad"), 1.0);
  EXPECT_EQ(c.numbers.at("groups"), 1.0);
  const Seen& b = tracer.seen[1];
  EXPECT_EQ(b.op, "batch_norm");
  EXPECT_EQ(b.inputs[0], y.state().get());
  EXPECT_FLOAT_EQ(float(b.numbers.at("eps")), 1e-3f);
  EXPECT_EQ(b.numbers.at("training"), 0.0);
  EXPECT_EQ(b.tensors.at("running_mean"), mean.data());
  EXPECT_EQ(b.tensors.at("running_var"), var.data());
  EXPECT_EQ(tracer.seen[2].op, "max_pool2d");
  EXPECT_EQ(tracer.seen[2].numbers.at("kernel"), 3.0);
  EXPECT_EQ(tracer.seen[2].inputs[0], z.state().get());
}

TEST(Trace, guards_nest_and_restore_the_outer_tracer) {
  ListTracer outer, inner;
  Var a(Tensor::full({2, 2}, 1.0f));
  {
    TraceGuard g1(outer);
    relu(a);
    {
      TraceGuard g2(inner);
      sigmoid(a);
      NoGradGuard no_grad;  // tracing does not depend on grad mode
      affine(a, 2.0f, 1.0f);
    }
    relu(a);
  }
  ASSERT_EQ(outer.seen.size(), 2u);
  ASSERT_EQ(inner.seen.size(), 2u);
  EXPECT_EQ(inner.seen[1].op, "affine");
  EXPECT_EQ(inner.seen[1].numbers.at("alpha"), 2.0);
  EXPECT_EQ(inner.seen[1].numbers.at("beta"), 1.0);
}

}  // namespace
}  // namespace mf::test
