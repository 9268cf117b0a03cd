// Proportional prioritized replay (Schaul et al. 2016) on the frame store.
//
// One sum-tree leaf per slot holds priority^alpha of the transition stored there: new transitions
// get the running max priority, episode starts 0. A draw picks a slot in proportion to its leaf
// and is rejected if that slot holds no sampleable transition: a transition whose frames are gone
// gets its leaf zeroed (it can never come back), one still waiting for its n-step future keeps
// it. Rejection keeps the draw proportional among sampleable transitions, so invalid slots have
// zero probability. update_priorities ignores slots overwritten since they were sampled.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
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
  // Called before the slot is published, while no other writer can take it (write_slot waits for
  // this write to publish before reusing the slot), so the leaf set here can only be this write's:
  // a writer delayed here never sets the leaf of a transition written after it. Setting it before
  // publishing also means a sampleable transition never has leaf 0 for want of its writer's last
  // step (sample_prioritized would find no mass on it). A sampler that picks the slot meanwhile
  // finds it being written and draws again; update_priorities and the zeroing of gone transitions
  // check the slot's publication under the tree's lock, so they no longer match.
  void on_write(uint64_t slot, uint64_t /*seq*/, bool transition) override {
    tree_.set(slot, transition ? std::pow(max_priority_.load(), alpha_) : 0.0);
  }
  uint64_t snapshot_kind() const override { return 1; }
  double snapshot_alpha() const override { return alpha_; }
  uint64_t extra_bytes() const override { return 8 + capacity_ * 8; }
  // Samplers and update_priorities may run during save(): the leaves are copied under the tree's
  // lock (reading them without it raced with every update), and written from the copy, outside the
  // lock, so the tree is held for a memcpy and not for the file's write.
  void write_extra(io::AtomicWriter& w) const override {
    w.put<double>(max_priority_.load());
    const std::vector<double> leaves = tree_.copy_leaves(capacity_);
    w.write(leaves.data(), capacity_ * 8);
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

  // Proportional among the sampleable transitions with a positive leaf, from a scan. As in
  // FrameStore::draw_where, an empty scan is an error only if nothing was written during it;
  // otherwise writers are refilling the window and the scan is repeated (at most kMaxRounds).
  double fallback(CallRng& rng, const TransitionOut& o) {
    for (int round = 0; round < kMaxRounds; ++round) {
      const uint64_t head = head_.load(std::memory_order_acquire), lo = head > capacity_ ? head - capacity_ : 0;
      DQNFAST_HOOK(before_scan, head);
      std::vector<uint64_t> cand;
      std::vector<double> weight, cum;
      double sum = 0.0;
      for (uint64_t t = lo; t < head; ++t) {
        const double p = tree_.get(t % capacity_);
        if (p > 0.0 && is_valid(t)) {
          sum += p;
          cand.push_back(t);
          weight.push_back(p);
          cum.push_back(sum);
        }
      }
      if (cand.empty()) {
        if (head_.load(std::memory_order_acquire) != head) {
          std::this_thread::yield();  // the writers are moving the window: let them, then scan again
          continue;
        }
        if (valid_in_window(lo, head).empty())
          throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
        throw std::invalid_argument("cannot sample: no sampleable transition has a positive priority");
      }
      // A pick that was overwritten since the scan is dropped and the pick repeated among the other
      // candidates (a few times; then a new scan), so one that stays sampleable is not passed over
      // for the rest. Single-threaded the first pick is read: the reference's draw.
      for (int pick = 0; pick < kMaxPicksPerScan && sum > 0.0; ++pick) {
        const double u = rng.uniform() * sum;
        const size_t k = std::min(size_t(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin()), cand.size() - 1);
        const double p = cum[k] - (k ? cum[k - 1] : 0.0);
        // P(i) = leaf / total (as the draws above); the candidates' sum stands in only if concurrent
        // writers emptied the tree since the scan, so the probability stays positive
        const double total = tree_.total();
        if (read_transition(cand[k], o)) return p / (total > 0.0 ? total : sum);
        weight[k] = 0.0;  // drop it: the cumulative sums again, without it
        sum = 0.0;
        for (size_t i = 0; i < cand.size(); ++i) cum[i] = sum += weight[i];
      }
    }
    throw std::runtime_error("cannot sample: concurrent writers overwrote every transition drawn");
  }

  static constexpr int kMaxPicksPerScan = 64;

  const double alpha_;
  SumTree tree_;
  std::atomic<double> max_priority_{1.0};
};

}  // namespace dqnfast
