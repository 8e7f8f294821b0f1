// Dense float32 tensors, row-major, NCHW by convention.
//
// Shape letters used in comments throughout the code base:
//   N batch, C channels, H height, W width (of a feature map), D embedding size, K classes,
//   O output channels, kH kW kernel size, Ho Wo output height and width.
//
// A Tensor is a cheap handle: copies share storage (like torch.Tensor); clone() makes a deep copy.
// Storage is contiguous and 64-byte aligned. Views (reshape) share storage with their source.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace mf {

// Up to kMaxRank dimensions, stored inline.
class Shape {
 public:
  static constexpr int kMaxRank = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return dims_[axis]; }
  int64_t& operator[](int axis) { return dims_[axis]; }
  int64_t numel() const;
  std::vector<int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + rank_}; }
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string str() const;  // "(32, 64, 56, 56)"

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};
std::ostream& operator<<(std::ostream& out, const Shape& shape);

class Tensor {
 public:
  Tensor() = default;                       // an undefined tensor: defined() is false
  static Tensor empty(const Shape& shape);  // uninitialised
  static Tensor zeros(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor from(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value) { return full(Shape{}, value); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const { return shape_.numel(); }

  float* data() { return storage_.get(); }
  const float* data() const { return storage_.get(); }
  float item() const;  // the single value of a one-element tensor

  Tensor reshape(const Shape& shape) const;  // shares storage; numel must match
  Tensor clone() const;
  void fill(float value);
  void zero() { fill(0.0f); }
  void copy_from(const Tensor& source);  // same numel
  void add_(const Tensor& other);        // this += other, same numel

 private:
  std::shared_ptr<float[]> storage_;
  Shape shape_;
};

// How many of t's values are NaN or ±Inf (a diverged run's weights, running statistics or
// embeddings: checked before they are saved, loaded or searched).
int64_t nonfinite_count(const Tensor& t);

}  // namespace mf
