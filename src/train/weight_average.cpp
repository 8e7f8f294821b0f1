#include "train/weight_average.h"

#include <algorithm>

#include "util/error.h"

namespace mf {

namespace {
// Calls f(live tensor, average tensor) for every parameter and buffer, in the same order.
template <class F>
void each_pair(const Module& live, Module& average, F&& f) {
  const auto lp = live.named_parameters(), ap = average.named_parameters();
  const auto lb = live.named_buffers(), ab = average.named_buffers();
  MF_CHECK(lp.size() == ap.size() && lb.size() == ab.size(),
           "weight average: the averaged model differs from the trained one");
  for (size_t i = 0; i < lp.size(); ++i) {
    MF_CHECK(lp[i].first == ap[i].first && lp[i].second.shape() == ap[i].second.shape(),
             "weight average: ", lp[i].first, " differs from ", ap[i].first);
    Tensor a = ap[i].second.value();  // a handle: writes reach the parameter's storage
    f(lp[i].second.value(), a);
  }
  for (size_t i = 0; i < lb.size(); ++i) {
    MF_CHECK(lb[i].first == ab[i].first && lb[i].second.shape() == ab[i].second.shape(),
             "weight average: ", lb[i].first, " differs from ", ab[i].first);
    Tensor a = ab[i].second;
    f(lb[i].second, a);
  }
}
}  // namespace

WeightAverage::WeightAverage(const Module& live, Module& average, double decay)
    : live_(live), average_(average), decay_(decay) {
  MF_CHECK(decay > 0.0 && decay < 1.0, "train.ema_decay must lie in (0, 1), got ", decay);
  each_pair(live_, average_, [](const Tensor&, Tensor&) {});  // checks the architectures match
}

double WeightAverage::decay_at(double decay, int64_t step) {
  return std::min(decay, (1.0 + double(step)) / (10.0 + double(step)));
}

void WeightAverage::reset() {
  each_pair(live_, average_,
            [](const Tensor& w, Tensor& a) { std::copy_n(w.data(), w.numel(), a.data()); });
}

void WeightAverage::update(int64_t step) {
  const float d = static_cast<float>(decay_at(decay_, step));
  each_pair(live_, average_, [d](const Tensor& w, Tensor& a) {
    const float* src = w.data();
    float* dst = a.data();
    for (int64_t i = 0; i < w.numel(); ++i) dst[i] = d * dst[i] + (1.0f - d) * src[i];
  });
}

}  // namespace mf
