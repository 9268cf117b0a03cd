// A sum tree over `size` leaves for proportional prioritized replay (Schaul et al. 2016).
//
// Parents are recomputed from their children on every update (never adjusted by deltas), so the
// sums depend only on the current leaves, and python/dqnfast/replay_reference.py reproduces them bit for
// bit. Updates and lookups are O(log n) and guarded by one mutex: they are short next to the frame
// copies, which stay lock-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace dqnfast {

class SumTree {
 public:
  explicit SumTree(uint64_t size) : leaves_(1) {
    while (leaves_ < size) leaves_ <<= 1;
    tree_.assign(2 * leaves_, 0.0);
  }

  uint64_t leaves() const { return leaves_; }

  void set(uint64_t i, double value) {
    std::lock_guard<std::mutex> lock(mu_);
    set_locked(i, value);
  }
  // Sets leaf i only if `still` holds under the lock (e.g. the slot still holds the same transition).
  template <typename Cond>
  bool set_if(uint64_t i, double value, Cond still) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!still()) return false;
    set_locked(i, value);
    return true;
  }

  double get(uint64_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return tree_[leaves_ + i];
  }
  double total() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tree_[1];
  }

  // The leaf where the prefix sum passes u (0 <= u < total()): descend left while u is below the
  // left subtree's sum, else subtract it and go right.
  uint64_t find(double u) const {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t i = 1;
    while (i < leaves_) {
      const double left = tree_[2 * i];
      if (u < left) {
        i = 2 * i;
      } else {
        u -= left;
        i = 2 * i + 1;
      }
    }
    return i - leaves_;
  }

  // The first n leaves, copied under the lock: one consistent state of the tree even while other
  // threads sample and update priorities (a snapshot writes this copy).
  std::vector<double> copy_leaves(uint64_t n) const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<double>(tree_.begin() + std::ptrdiff_t(leaves_), tree_.begin() + std::ptrdiff_t(leaves_ + n));
  }

 private:
  void set_locked(uint64_t i, double value) {
    uint64_t k = leaves_ + i;
    tree_[k] = value;
    for (k >>= 1; k >= 1; k >>= 1) tree_[k] = tree_[2 * k] + tree_[2 * k + 1];
  }

  uint64_t leaves_;
  std::vector<double> tree_;
  mutable std::mutex mu_;
};

}  // namespace dqnfast
