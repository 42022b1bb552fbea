// suptok/process/index_set.hpp: finite sets of positions S subset {1..64} (docs/math.md section 5).
//
//   index_set S{1, 3, 4}        a set of 1-based positions; bit i-1 of S.bits() holds position i
//   index_set::first(n)         {1..n}, 0 <= n <= 64
//   S | T, S & T, S - T, S ^ T  union, intersection, difference, symmetric difference
//   S.subset_of(T), S.contains(i), S.size(), S.max() (0 for the empty set), S.empty()
//   for (int i : S)             the positions in increasing order
//   subsets(S, order)           every T subset of S (2^|S| of them, the empty set and S included)
//                               in increasing (0, ..., S) or decreasing (S, ..., 0) order of bits()
//   std::cout << S              prints {1,3,4}; the empty set prints {}
// Subset iteration uses the bit tricks T -> (T - S) & S (increasing) and T -> (T - 1) & S
// (decreasing), in unsigned 64-bit arithmetic, so it is exact up to |S| = 64 (never try to
// exhaust 2^64 subsets, of course).
#pragma once

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <ostream>
#include <sstream>
#include <string>

#include "../core/error.hpp"

namespace suptok {

class index_set {
 public:
  static constexpr int max_position = 64;

  constexpr index_set() = default;
  // A set of positions, each in 1..64 (argument name "positions").
  index_set(std::initializer_list<int> positions) {
    for (int i : positions) *this = *this | single(i, "positions");
  }
  static constexpr index_set from_bits(std::uint64_t bits) { return index_set(bits, 0); }
  // {i}, i in 1..64.
  static index_set single(int i, const std::string& argument = "i") {
    detail::require(i >= 1 && i <= max_position, argument, "position ", i, " outside 1..", max_position);
    return from_bits(std::uint64_t{1} << (i - 1));
  }
  // {1..n}, n in 0..64.
  static index_set first(int n, const std::string& argument = "n") {
    detail::require(n >= 0 && n <= max_position, argument, "n = ", n, " outside 0..", max_position);
    return from_bits(n == max_position ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1);
  }

  constexpr std::uint64_t bits() const { return bits_; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr int size() const { return std::popcount(bits_); }
  // The largest position, 0 for the empty set.
  constexpr int max() const { return max_position - std::countl_zero(bits_); }
  constexpr bool contains(int i) const { return i >= 1 && i <= max_position && ((bits_ >> (i - 1)) & 1u); }
  constexpr bool subset_of(index_set t) const { return (bits_ & ~t.bits_) == 0; }

  friend constexpr index_set operator|(index_set a, index_set b) { return from_bits(a.bits_ | b.bits_); }
  friend constexpr index_set operator&(index_set a, index_set b) { return from_bits(a.bits_ & b.bits_); }
  friend constexpr index_set operator-(index_set a, index_set b) { return from_bits(a.bits_ & ~b.bits_); }
  friend constexpr index_set operator^(index_set a, index_set b) { return from_bits(a.bits_ ^ b.bits_); }
  friend constexpr bool operator==(index_set a, index_set b) = default;

  // Iterates over the positions in increasing order.
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    using pointer = const int*;
    using reference = int;
    constexpr iterator() = default;
    constexpr explicit iterator(std::uint64_t rest) : rest_(rest) {}
    constexpr int operator*() const { return std::countr_zero(rest_) + 1; }
    constexpr iterator& operator++() {
      rest_ &= rest_ - 1;  // clears the lowest set bit
      return *this;
    }
    constexpr iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend constexpr bool operator==(iterator a, iterator b) = default;

   private:
    std::uint64_t rest_ = 0;
  };
  constexpr iterator begin() const { return iterator(bits_); }
  constexpr iterator end() const { return iterator(0); }

  std::string to_string() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
  friend std::ostream& operator<<(std::ostream& os, index_set s) {
    os << '{';
    bool first = true;
    for (int i : s) {
      os << (first ? "" : ",") << i;
      first = false;
    }
    return os << '}';
  }

 private:
  constexpr index_set(std::uint64_t bits, int) : bits_(bits) {}
  std::uint64_t bits_ = 0;
};

enum class subset_order { increasing, decreasing };

// The 2^|S| subsets of S as a range, in increasing or decreasing order of their bits.
class subset_range {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = index_set;
    using difference_type = std::ptrdiff_t;
    using pointer = const index_set*;
    using reference = index_set;
    constexpr iterator() = default;
    constexpr iterator(std::uint64_t set, std::uint64_t current, subset_order order, bool done)
        : set_(set), current_(current), order_(order), done_(done) {}
    constexpr index_set operator*() const { return index_set::from_bits(current_); }
    constexpr iterator& operator++() {
      const std::uint64_t last = order_ == subset_order::increasing ? set_ : 0;
      if (current_ == last) {
        done_ = true;
        current_ = 0;
      } else {
        current_ = order_ == subset_order::increasing ? (current_ - set_) & set_ : (current_ - 1) & set_;
      }
      return *this;
    }
    constexpr iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend constexpr bool operator==(const iterator& a, const iterator& b) {
      return a.done_ == b.done_ && (a.done_ || a.current_ == b.current_);
    }

   private:
    std::uint64_t set_ = 0;
    std::uint64_t current_ = 0;
    subset_order order_ = subset_order::increasing;
    bool done_ = true;
  };

  constexpr subset_range(index_set s, subset_order order) : set_(s.bits()), order_(order) {}
  constexpr iterator begin() const {
    return iterator(set_, order_ == subset_order::increasing ? 0 : set_, order_, false);
  }
  constexpr iterator end() const { return iterator(set_, 0, order_, true); }

 private:
  std::uint64_t set_;
  subset_order order_;
};

constexpr subset_range subsets(index_set s, subset_order order = subset_order::increasing) {
  return subset_range(s, order);
}

}  // namespace suptok
