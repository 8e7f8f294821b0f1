#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <sstream>

#include "tensor/allocator.h"
#include "util/error.h"

namespace mf {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  MF_CHECK(static_cast<int>(dims.size()) <= kMaxRank, "a tensor has at most ", kMaxRank,
           " dimensions, got ", dims.size());
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) {
    MF_CHECK(dims[i] >= 0, "negative dimension ", dims[i], " in a shape");
    dims_[i] = dims[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream out;
  out << '(';
  for (int i = 0; i < rank_; ++i) out << (i ? ", " : "") << dims_[i];
  out << ')';
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  return out << shape.str();
}

Tensor Tensor::empty(const Shape& shape) {
  Tensor t;
  t.shape_ = shape;
  const size_t bytes = static_cast<size_t>(shape.numel()) * sizeof(float);
  float* raw;
  try {
    raw = static_cast<float*>(storage::allocate(bytes));
  } catch (const Error&) {
    MF_FAIL("out of memory allocating a tensor of shape ", shape, " (", bytes, " bytes)");
  }
  t.storage_ = std::shared_ptr<float[]>(raw, [bytes](float* p) { storage::release(p, bytes); });
  return t;
}

Tensor Tensor::zeros(const Shape& shape) {
  Tensor t = empty(shape);
  std::memset(t.data(), 0, shape.numel() * sizeof(float));
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill(value);
  return t;
}

Tensor Tensor::from(const Shape& shape, const std::vector<float>& values) {
  MF_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from: ", values.size(),
           " values for shape ", shape);
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

int64_t Tensor::dim(int axis) const {
  const int r = rank();
  if (axis < 0) axis += r;
  MF_CHECK(axis >= 0 && axis < r, "axis ", axis, " out of range for shape ", shape_);
  return shape_[axis];
}

float Tensor::item() const {
  MF_CHECK(defined() && numel() == 1, "item() needs a one-element tensor, got shape ", shape_);
  return data()[0];
}

Tensor Tensor::reshape(const Shape& shape) const {
  MF_CHECK(shape.numel() == numel(), "reshape: cannot view ", shape_, " as ", shape);
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = empty(shape_);
  std::memcpy(t.data(), data(), numel() * sizeof(float));
  return t;
}

void Tensor::fill(float value) {
  std::fill(data(), data() + numel(), value);
}

void Tensor::copy_from(const Tensor& source) {
  MF_CHECK(source.numel() == numel(), "copy_from: ", source.shape(), " into ", shape_);
  std::memcpy(data(), source.data(), numel() * sizeof(float));
}

void Tensor::add_(const Tensor& other) {
  MF_CHECK(other.numel() == numel(), "add_: ", other.shape(), " into ", shape_);
  float* a = data();
  const float* b = other.data();
  const int64_t n = numel();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

int64_t nonfinite_count(const Tensor& t) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(t.data()[i]);
  return bad;
}

}  // namespace mf
