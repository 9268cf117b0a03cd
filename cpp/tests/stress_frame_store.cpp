// Multi-threaded stress test of the lock-free frame store, for ThreadSanitizer and plain builds.
//
//   g++ -std=c++17 -O1 -g -fsanitize=thread -DDQNFAST_TSAN -Icpp cpp/tests/stress_frame_store.cpp -o stress -pthread
//   ./stress [writes_per_env] [n_step] [per] [envs=3] [cap=61] [checkpoints=8]
//   (per: a PrioritizedStore; readers also update priorities)
//
// Each env stream is fed by its own thread with self-identifying frames (every byte of a frame is
// derived from (env, episode, step)), while reader threads sample continuously from a small store
// that wraps around many times (with n_step 1, one of them into the shared-frames layout). Every
// sampled transition is checked: obs and next_obs are consecutive states of one episode of one
// stream, zero padding only before an episode's first frame, action and reward match the frame
// ids, and no frame is torn. Another thread reads every stream's acting state (stacked) while it is
// being written and checks it the same way.
//
// At `checkpoints` points the writers stop together and the quiescent store is audited: size()
// equals a full validity scan, and (prioritized) every sampleable transition has a positive leaf.
// Exit code 0 when all hold.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dqnfast/frame_store.hpp"
#include "dqnfast/prioritized.hpp"

using namespace dqnfast;

namespace {

constexpr uint32_t kStack = 4, kReaders = 2, kBatch = 16;
constexpr uint64_t kFrameBytes = 257;  // odd on purpose: no alignment assumptions
uint32_t n_step = 1, num_envs = 3, checkpoints = 8;
uint64_t capacity = 61;
bool per = false;

std::atomic<int> failures{0};

void fail(const char* what, uint64_t a, uint64_t b) {
  if (failures.fetch_add(1) < 10) std::fprintf(stderr, "FAIL: %s (%llu, %llu)\n", what, (unsigned long long)a, (unsigned long long)b);
}

// Frame byte k of (env, episode, step): a word of the id, offset by k so a torn frame is detectable.
uint8_t pixel(uint32_t env, uint32_t ep, uint32_t step, uint64_t k) {
  const uint8_t word[4] = {uint8_t(env + 1), uint8_t(ep), uint8_t(step), uint8_t(step >> 8)};
  return uint8_t(word[k % 4] ^ uint8_t((k / 4) * 31));  // varies along the frame
}

void fill(uint8_t* f, uint32_t env, uint32_t ep, uint32_t step) {
  for (uint64_t k = 0; k < kFrameBytes; ++k) f[k] = pixel(env, ep, step, k);
}

struct Id {
  bool pad;
  uint32_t env, ep, step;
};

// Decodes a frame; flags torn frames (bytes of two different ids).
Id decode(const uint8_t* f) {
  bool zero = true;
  for (uint64_t k = 0; k < kFrameBytes; ++k) zero &= f[k] == 0;
  if (zero) return {true, 0, 0, 0};
  Id id{false, uint32_t(f[0]) - 1, f[1], uint32_t(f[2]) | (uint32_t(f[3]) << 8)};
  for (uint64_t k = 0; k < kFrameBytes; ++k)
    if (f[k] != pixel(id.env, id.ep, id.step, k)) {
      fail("torn frame", k, f[k]);
      break;
    }
  return id;
}

int64_t action_of(uint32_t env, uint32_t ep, uint32_t step) { return (int64_t(env) << 40) | (int64_t(ep & 255) << 20) | step; }

void check_state(const uint8_t* s, Id& newest) {
  Id ids[kStack];
  for (uint32_t k = 0; k < kStack; ++k) ids[k] = decode(s + k * kFrameBytes);
  uint32_t pad = 0;
  while (pad < kStack && ids[pad].pad) ++pad;
  if (pad == kStack) return fail("all-padding state", 0, 0);
  newest = ids[kStack - 1];
  for (uint32_t k = pad; k < kStack; ++k) {
    const Id& i = ids[k];
    if (i.pad || i.env != newest.env || i.ep != newest.ep || i.step + (kStack - 1 - k) != newest.step)
      return fail("state mixes frames", k, i.step);
  }
  if (pad && ids[pad].step != 0) fail("padding before a non-first frame", pad, ids[pad].step);
}

constexpr uint64_t kMinChecked = 2000;  // writers keep going until readers checked this many
std::atomic<uint64_t> checked{0}, audits{0}, peeked{0};

// The quiescent store agrees with itself: size() is a full scan's count, and with prioritized
// replay no sampleable transition has probability 0 (it could never be drawn, so never mended).
void audit(const FrameStore& store) {
  const std::vector<uint64_t> valid = store.valid_indices();
  if (store.size() != valid.size()) fail("size() differs from a scan when quiescent", store.size(), valid.size());
  if (per)
    for (uint64_t t : valid)
      if (!(static_cast<const PrioritizedStore&>(store).leaf(t % store.capacity()) > 0.0))
        fail("a sampleable transition has leaf 0", t, 0);
  audits.fetch_add(1);
}

// All writers stop here together; the last to arrive audits the store, then all go on.
class Checkpoint {
 public:
  explicit Checkpoint(uint32_t parties) : parties_(parties) {}
  void arrive(const FrameStore& store) {
    const uint64_t gen = gen_.load();
    if (arrived_.fetch_add(1) + 1 == parties_) {
      audit(store);
      arrived_.store(0);
      gen_.fetch_add(1);
    } else {
      while (gen_.load() == gen) std::this_thread::yield();
    }
  }

 private:
  const uint32_t parties_;
  std::atomic<uint32_t> arrived_{0};
  std::atomic<uint64_t> gen_{0};
};

void writer(FrameStore& store, uint32_t env, uint32_t writes, Checkpoint& checkpoint) {
  std::vector<uint8_t> f(kFrameBytes);
  uint32_t ep = 0, step = 0;
  uint64_t rng = env * 7919 + 1;
  fill(f.data(), env, ep, 0);
  store.start_episode(env, f.data());
  // At least `writes` steps, and on (up to 50x) until the readers have checked enough samples.
  const uint64_t every = std::max<uint64_t>(1, writes / (checkpoints + 1));
  for (uint64_t n = 0; n < writes || (checked.load() < kMinChecked && n < 50ull * writes); ++n) {
    if (n > 0 && n % every == 0 && n / every <= checkpoints) checkpoint.arrive(store);
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    const bool end = (rng >> 59) == 0;  // episodes of ~32 steps on average
    ++step;
    fill(f.data(), env, ep, step);
    StepRecord r{action_of(env, ep, step), float(step % 97), end && (rng & 1), end && !(rng & 1)};
    store.add(env, r, f.data());
    if (end) {
      ++ep;
      step = 0;
      fill(f.data(), env, ep, 0);
      store.start_episode(env, f.data());
    }
  }
}

// shared: sample into the shared-frames layout (one row of stack + 1 frames holds obs and next_obs).
void reader(FrameStore& store, const std::atomic<bool>& stop, bool shared) {
  const uint64_t rs = (kStack + (shared ? 1 : 0)) * kFrameBytes;  // bytes per row
  std::vector<uint8_t> frames(kBatch * rs), next_frames(shared ? 0 : frames.size());
  uint8_t* const obs = frames.data();
  uint8_t* const next = shared ? obs + kFrameBytes : next_frames.data();
  int64_t action[kBatch], index[kBatch];
  float reward[kBatch], discount[kBatch];
  bool term[kBatch], trunc[kBatch];
  const TransitionOut out{obs, next, action, reward, term, trunc, index, discount, rs, shared};
  while (!stop.load()) {
    if (store.size() == 0) continue;
    float weights[kBatch];
    try {
      if (per)
        static_cast<PrioritizedStore&>(store).sample_prioritized(kBatch, 0.4, out, weights);
      else
        store.sample(kBatch, out);
    } catch (const std::exception&) {
      continue;  // everything in the window overwritten at once: legal, rare
    }
    if (per) {
      double pri[kBatch];
      for (uint32_t b = 0; b < kBatch; ++b) {
        pri[b] = 0.5 + (index[b] % 7);
        if (!(weights[b] > 0.f && weights[b] <= 1.f)) fail("importance weight out of (0, 1]", b, 0);
      }
      static_cast<PrioritizedStore&>(store).update_priorities(kBatch, index, pri);
    }
    for (uint32_t b = 0; b < kBatch; ++b) {
      Id o, n;
      check_state(obs + b * rs, o);
      check_state(next + b * rs, n);
      // gamma = 0.5, so the window's length m is exact from discount = 0.5^m
      const uint32_t m = uint32_t(std::lround(-std::log2(double(discount[b]))));
      if (m < 1 || m > n_step) fail("n-step window length out of range", m, n_step);
      if (n.env != o.env || n.ep != o.ep || n.step != o.step + m) fail("next_obs does not follow obs", o.step, n.step);
      if (action[b] != action_of(o.env, o.ep, o.step + 1)) fail("action does not belong to the transition", action[b], o.step);
      double ret = 0, g = 1;
      for (uint32_t k = 1; k <= m; ++k, g *= 0.5) ret += g * double((o.step + k) % 97);
      if (reward[b] != float(ret)) fail("reward is not the window's discounted return", o.step, m);
      // the writers never abandon an episode, so only a terminal step can cut a window short
      if (m < n_step && !term[b] && !trunc[b]) fail("short n-step window without a terminal step", o.step, m);
    }
    checked.fetch_add(kBatch);
  }
}

// Reads each stream's acting state while its writer runs: always one episode's consecutive frames.
void peeker(const FrameStore& store, const std::atomic<bool>& stop) {
  std::vector<uint8_t> state(kStack * kFrameBytes);
  for (uint64_t i = 0; !stop.load(); ++i) {
    const uint32_t env = uint32_t(i % num_envs);
    (void)store.episode_active(env);
    try {
      store.stacked(env, state.data());
    } catch (const std::invalid_argument&) {
      continue;  // no frame yet
    }
    Id newest;
    check_state(state.data(), newest);
    if (newest.env != env) fail("stacked() returned another stream's frames", env, newest.env);
    peeked.fetch_add(1);
  }
}

uint64_t option(int argc, char** argv, const std::string& name, uint64_t fallback) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind(name + "=", 0) == 0) return std::strtoull(argv[i] + name.size() + 1, nullptr, 10);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const uint32_t writes = argc > 1 ? uint32_t(std::atoi(argv[1])) : 20000;
  n_step = argc > 2 && std::string(argv[2]).find('=') == std::string::npos ? uint32_t(std::atoi(argv[2])) : 1;
  per = argc > 3 && std::string(argv[3]) == "per";
  num_envs = uint32_t(option(argc, argv, "envs", 3));
  capacity = option(argc, argv, "cap", 61);
  checkpoints = uint32_t(option(argc, argv, "checkpoints", 8));
  std::unique_ptr<FrameStore> owned =
      per ? std::make_unique<PrioritizedStore>(capacity, kFrameBytes, kStack, num_envs, 12345, false, "", n_step, 0.5, 0.6)
          : std::make_unique<FrameStore>(capacity, kFrameBytes, kStack, num_envs, 12345, false, "", n_step, 0.5);
  FrameStore& store = *owned;
  std::atomic<bool> stop{false};
  Checkpoint checkpoint(num_envs);
  std::vector<std::thread> readers, writers;
  // With one-step transitions the second reader samples into the shared-frames layout.
  for (uint32_t r = 0; r < kReaders; ++r)
    readers.emplace_back(reader, std::ref(store), std::cref(stop), r == 1 && n_step == 1);
  readers.emplace_back(peeker, std::cref(store), std::cref(stop));
  for (uint32_t e = 0; e < num_envs; ++e) writers.emplace_back(writer, std::ref(store), e, writes, std::ref(checkpoint));
  for (auto& t : writers) t.join();
  stop.store(true);
  for (auto& t : readers) t.join();
  audit(store);  // quiescent now
  std::printf("writes=%llu checked_transitions=%llu peeked_states=%llu quiescent_audits=%llu failures=%d\n",
              (unsigned long long)store.writes(), (unsigned long long)checked.load(), (unsigned long long)peeked.load(),
              (unsigned long long)audits.load(), failures.load());
  return failures.load() == 0 ? 0 : 1;
}
