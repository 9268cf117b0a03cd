// Proportional prioritized replay (Schaul et al. 2016) on the frame store.
//
// One sum-tree leaf per slot holds priority^alpha of the transition stored there: new transitions
// get the running max priority, episode starts 0. A draw picks a slot in proportion to its leaf
// and is rejected if that slot holds no sampleable transition: a transition whose frames are gone
// gets its leaf zeroed (it can never come back), one still waiting for its n-step future keeps
// it. Rejection keeps the draw proportional among sampleable transitions, so invalid slots have
// zero probability. update_priorities ignores slots overwritten since they were sampled.
#pragma once

#include <atomic>
#include <cmath>
#include <vector>

#include "dqnfast/frame_store.hpp"
#include "dqnfast/sum_tree.hpp"

namespace dqnfast {

class PrioritizedStore : public FrameStore {
 public:
  PrioritizedStore(uint64_t capacity, uint64_t frame_bytes, uint32_t stack, uint32_t num_envs, uint64_t seed,
                   bool pad_first, const std::string& storage_path, uint32_t n_step, double gamma, double alpha)
      : FrameStore(capacity, frame_bytes, stack, num_envs, seed, pad_first, storage_path, n_step, gamma),
        alpha_(alpha),
        tree_(capacity) {
    if (!(alpha >= 0.0) || !std::isfinite(alpha)) throw std::invalid_argument("alpha must be finite and >= 0");
  }

  double alpha() const { return alpha_; }
  double max_priority() const { return max_priority_.load(); }
  double leaf(uint64_t slot) const { return tree_.get(slot); }  // priority^alpha of a slot

  // Proportional draws with replacement; weights[b] = (N P(b))^-beta normalised by the batch's max.
  // shift_pad, geometry: a random shift of every state, as in FrameStore::sample.
  void sample_prioritized(size_t batch, double beta, const TransitionOut& out, float* weights, uint32_t shift_pad = 0,
                          const ShiftGeometry* geometry = nullptr) {
    check_out(out);
    if (size() == 0) throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
    const uint64_t call = calls_.fetch_add(1, std::memory_order_acq_rel);
    CallRng rng(seed_, call);
    ShiftStream shifts(seed_, call, shift_pad, out.shared);
    std::vector<double> prob(batch);
    for (size_t b = 0; b < batch; ++b) {
      const TransitionOut o = shifted(offset(out, b), shifts, shift_pad ? geometry : nullptr);
      bool done = false;
      for (int attempt = 0; attempt < kMaxRejectsPerDraw && !done; ++attempt) {
        const double total = tree_.total();
        if (!(total > 0.0)) break;
        const uint64_t slot = tree_.find(rng.uniform() * total);
        const double p = slot < capacity_ ? tree_.get(slot) : 0.0;
        if (!(p > 0.0)) continue;  // rounding at the very end of the range
        if (try_read(slot, o)) {
          prob[b] = p / total;
          done = true;
        }
      }
      if (!done) prob[b] = fallback(rng, o);  // rare: almost all the mass sits on unsampleable slots
    }
    // N of the weights' (N P(i))^-beta: the sampleable count. Under concurrent writers it can read 0
    // for a moment although rows were just drawn (a tiny store being lapped); 1 keeps weights finite.
    const double n = double(std::max<uint64_t>(size(), 1));
    double max_w = 0.0;
    for (size_t b = 0; b < batch; ++b) max_w = std::max(max_w, std::pow(n * prob[b], -beta));
    for (size_t b = 0; b < batch; ++b) weights[b] = float(std::pow(n * prob[b], -beta) / max_w);
  }

  // priorities >= 0 and finite (checked by the caller); stale indices are skipped. Returns how many
  // were applied.
  size_t update_priorities(size_t n, const int64_t* index, const double* priorities) {
    size_t applied = 0;
    for (size_t i = 0; i < n; ++i) {
      if (index[i] < 0) continue;
      const uint64_t t = uint64_t(index[i]), slot = t % capacity_;
      const bool ok = tree_.set_if(slot, std::pow(priorities[i], alpha_), [&] {
        return pub_[slot].load(std::memory_order_acquire) == t + 1 && !(meta_first(slot));
      });
      if (ok) {
        ++applied;
        double cur = max_priority_.load();
        while (priorities[i] > cur && !max_priority_.compare_exchange_weak(cur, priorities[i])) {
        }
      }
    }
    return applied;
  }

 protected:
  // Only while the slot still holds seq: a writer delayed here (preempted, or waiting for the tree's
  // lock) must not set the leaf of a transition written after it, which could then never be drawn.
  void on_write(uint64_t slot, uint64_t seq, bool transition) override {
    const double leaf = transition ? std::pow(max_priority_.load(), alpha_) : 0.0;
    tree_.set_if(slot, leaf, [&] { return pub_[slot].load(std::memory_order_acquire) == seq + 1; });
  }
  uint64_t snapshot_kind() const override { return 1; }
  double snapshot_alpha() const override { return alpha_; }
  uint64_t extra_bytes() const override { return 8 + capacity_ * 8; }
  void write_extra(io::AtomicWriter& w) const override {
    w.put<double>(max_priority_.load());
    w.write(tree_.raw().data() + tree_.leaves(), capacity_ * 8);
  }
  void read_extra(io::HashingReader& r) override {
    max_priority_.store(r.get<double>());
    std::vector<double> leaves(capacity_);
    r.read(leaves.data(), capacity_ * 8);
    for (uint64_t i = 0; i < capacity_; ++i) tree_.set(i, leaves[i]);  // parents recomputed: same sums
  }

 private:
  bool meta_first(uint64_t slot) const {
    Meta m;
    uint64_t hist[kMaxStack + 1];
    const uint64_t v = pub_[slot].load(std::memory_order_acquire);
    return v == 0 || !read_slot(v - 1, m, hist) || (m.flags & kFirst);
  }

  // Reads the transition in `slot` into o; false if there is none to sample (zeroing its leaf if
  // its frames are gone for good).
  bool try_read(uint64_t slot, const TransitionOut& o) {
    const uint64_t v = pub_[slot].load(std::memory_order_acquire);
    if (v == 0) return false;  // being written
    const uint64_t t = v - 1;
    if (!frames_valid(t)) {
      tree_.set_if(slot, 0.0, [&] { return pub_[slot].load(std::memory_order_acquire) == v; });
      return false;
    }
    return read_transition(t, o);  // false while its n-step future is unknown, or torn
  }

  // Proportional among the sampleable transitions with a positive leaf, from a scan.
  double fallback(CallRng& rng, const TransitionOut& o) {
    for (int round = 0; round < 64; ++round) {
      const uint64_t head = head_.load(std::memory_order_acquire), lo = head > capacity_ ? head - capacity_ : 0;
      std::vector<uint64_t> cand;
      std::vector<double> cum;
      double sum = 0.0;
      for (uint64_t t = lo; t < head; ++t) {
        const double p = tree_.get(t % capacity_);
        if (p > 0.0 && is_valid(t)) {
          sum += p;
          cand.push_back(t);
          cum.push_back(sum);
        }
      }
      if (cand.empty())
        throw std::invalid_argument("cannot sample: no sampleable transition has a positive priority");
      const double u = rng.uniform() * sum;
      const size_t k = std::min(size_t(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin()), cand.size() - 1);
      // P(i) = leaf / total (as the draws above); the candidates' sum stands in only if concurrent
      // writers emptied the tree since the scan, so the probability stays positive
      const double total = tree_.total();
      if (read_transition(cand[k], o)) return (cum[k] - (k ? cum[k - 1] : 0.0)) / (total > 0.0 ? total : sum);
    }
    throw std::runtime_error("cannot sample: concurrent writers overwrote every transition drawn");
  }

  const double alpha_;
  SumTree tree_;
  std::atomic<double> max_priority_{1.0};
};

}  // namespace dqnfast
