// Optimizers against torch.optim trajectories (scripts/make_optim_fixtures.py), schedules against
// values worked out by hand, and gradient clipping against its definition.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/optimizer.h"
#include "support/fixtures.h"

namespace mf::test {
namespace {

void check_trajectory(const std::string& kind, const std::string& group, Params params) {
  Fixture fx("optim.h5", group);
  Var w(fx.tensor("w_init"), true), b(fx.tensor("b_init"), true);
  std::vector<ParamGroup> groups{{{{"w", w}}, 1.0f, 5e-4f}, {{{"b", b}}, 2.0f, 0.0f}};
  auto opt = optimizer_registry().create(kind, params, groups);
  h5::File file(fixture_path("optim.h5"), h5::File::Mode::kRead);
  const auto lrs = file.read_doubles(group + "/lrs");
  for (size_t step = 0; step < lrs.size(); ++step) {
    const std::string s = std::to_string(step);
    w.grad() = fx.tensor("gw" + s);
    b.grad() = fx.tensor("gb" + s);
    opt->step(lrs[step]);
    // 1e-6: float32 state against torch's float64 run over five steps.
    EXPECT_TRUE(tensors_close(w.value(), fx.tensor("w" + s), 1e-6, group + " w step " + s));
    EXPECT_TRUE(tensors_close(b.value(), fx.tensor("b" + s), 1e-6, group + " b step " + s));
  }
}

TEST(Sgd, momentum_matches_torch) {
  check_trajectory("sgd", "sgd", Params());
}
TEST(Sgd, nesterov_matches_torch) {
  Params p;
  p.set("nesterov", "true");
  check_trajectory("sgd", "sgd_nesterov", p);
}
TEST(Sgd, plain_matches_torch) {
  Params p;
  p.set("momentum", "0");
  check_trajectory("sgd", "sgd_plain", p);
}
TEST(AdamW, matches_torch) {
  check_trajectory("adamw", "adamw", Params());
}

TEST(Sgd, state_round_trip_continues_identically) {
  auto make = [](Var& w) {
    std::vector<ParamGroup> groups{{{{"w", w}}, 1.0f, 0.0f}};
    return optimizer_registry().create("sgd", Params(), groups);
  };
  Var a(Tensor::from({2}, {1.0f, -1.0f}), true), b(Tensor::from({2}, {1.0f, -1.0f}), true);
  auto oa = make(a), ob = make(b);
  a.grad() = Tensor::from({2}, {0.5f, 0.25f});
  b.grad() = a.grad().clone();
  oa->step(0.1);
  ob->step(0.1);
  auto resumed = make(b);
  resumed->load_state(ob->state());
  oa->step(0.1);
  resumed->step(0.1);
  EXPECT_EQ(a.value().data()[0], b.value().data()[0]);
  EXPECT_EQ(a.value().data()[1], b.value().data()[1]);
}

TEST(ClipGradNorm, scales_to_max_norm) {
  Var w(Tensor::zeros({2}), true);
  w.grad() = Tensor::from({2}, {3.0f, 4.0f});  // norm 5
  std::vector<ParamGroup> groups{{{{"w", w}}, 1.0f, 0.0f}};
  Sgd opt(groups, 0.0, false);
  EXPECT_NEAR(opt.clip_grad_norm(1.0), 5.0, 1e-6);
  EXPECT_NEAR(w.grad().data()[0], 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(opt.clip_grad_norm(10.0), 1.0, 1e-5);  // below the limit: unchanged
  EXPECT_NEAR(w.grad().data()[1], 4.0 / (5.0 + 1e-6), 1e-6);
}

double lr_at(const std::string& type, Params p, double base, int64_t total, int64_t step) {
  return schedule_registry().create(type, p, base, total)->lr(step);
}

TEST(Schedule, multistep_by_hand) {
  Params p;
  p.set("milestones", "[20000, 28000]");
  EXPECT_DOUBLE_EQ(lr_at("multistep", p, 0.1, 32000, 19999), 0.1);
  EXPECT_NEAR(lr_at("multistep", p, 0.1, 32000, 20000), 0.01, 1e-15);
  EXPECT_NEAR(lr_at("multistep", p, 0.1, 32000, 31999), 0.001, 1e-15);
}

TEST(Schedule, warmup_then_poly_by_hand) {
  Params p;
  p.set("warmup_steps", "10");
  // Warm-up: 0.1·(s+1)/10; then 0.1·(1 − (s − 10)/90).
  EXPECT_NEAR(lr_at("poly", p, 0.1, 100, 0), 0.01, 1e-15);
  EXPECT_NEAR(lr_at("poly", p, 0.1, 100, 9), 0.1, 1e-15);
  EXPECT_NEAR(lr_at("poly", p, 0.1, 100, 10), 0.1, 1e-15);
  EXPECT_NEAR(lr_at("poly", p, 0.1, 100, 55), 0.05, 1e-15);
  EXPECT_NEAR(lr_at("poly", p, 0.1, 100, 100), 0.0, 1e-15);
}

TEST(Schedule, cosine_by_hand) {
  Params p;
  p.set("min_lr", "0.001");
  EXPECT_NEAR(lr_at("cosine", p, 0.1, 100, 0), 0.1, 1e-15);
  EXPECT_NEAR(lr_at("cosine", p, 0.1, 100, 50), 0.001 + 0.5 * 0.099, 1e-12);
  EXPECT_NEAR(lr_at("cosine", p, 0.1, 100, 100), 0.001, 1e-15);
}

TEST(Schedule, bad_values_name_the_key) {
  Params p("schedule");
  p.set("milestones", "[300, 200]", "cfg.yaml:7:3");
  try {
    lr_at("multistep", p, 0.1, 1000, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.milestones (cfg.yaml:7:3)"), std::string::npos)
        << e.what();
  }
  Params q("schedule");
  q.set("gama", "0.1");
  EXPECT_THROW(lr_at("multistep", q, 0.1, 1000, 0), Error);      // unknown key
  EXPECT_THROW(lr_at("linear", Params(), 0.1, 1000, 0), Error);  // unknown schedule
}

}  // namespace
}  // namespace mf::test
