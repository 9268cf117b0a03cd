// Stress scenarios for the edges of the concurrency promises (docs/design.md, "Concurrency"),
// each found by a stress review; optimised and under ThreadSanitizer.
//
//   g++ -std=c++17 -O2 -Icpp cpp/tests/concurrency_edges.cpp -o edges -pthread
//   ./edges [calls=20000] [scratch dir=.]   # one line per scenario, then failures=N; exit 0 when N == 0
//
// - empty (sample, sample_prioritized, sample_sequences): writer threads lap a tiny n-step store
//   while a sampler calls one of them; and sample_sequences under heavy writing into a 150-slot
//   store. Each writer announces the oldest frame of its newest sampleable transition (or, for
//   sequences, of its newest whole sequence); when that frame's slot was not handed to another
//   write by the end of a call (frame + capacity >= writes() then), the transition was sampleable
//   for the whole call. Then the call may not raise, and size() read right after it may not be 0.
//   (Calls with nothing sampleable throughout may raise: that is no promise broken, and how often
//   it happens depends on the machine's speed, so it is only reported.)
// - stacked: stacked() of a stream whose writer keeps starting episodes may not say "no frame yet",
//   and always returns one episode's consecutive frames.
// - save: prioritized snapshots saved while other threads sample and update priorities all load,
//   with the size they were saved with.
//
// Counts are of calls, never of time: what is checked does not depend on the machine's speed.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dqnfast/frame_store.hpp"
#include "dqnfast/prioritized.hpp"

using namespace dqnfast;

namespace {

int failures = 0;
uint64_t checked_calls = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("  FAIL: %s\n", what.c_str());
  }
}

const std::string kEmpty = "cannot sample: the buffer holds no sampleable transition yet";

// ---- empty ------------------------------------------------------------------------------------

enum class Kind { uniform, prioritized, sequences };

struct Setup {
  const char* name;
  uint32_t envs, n_step, episode;  // episodes of `episode` steps, each ending terminated
  uint32_t length;                 // of a sampled sequence
  uint64_t cap;
};
// The reproducer's: 6 writers lapping the minimum store (envs * (stack + 1) slots), n-step windows.
const Setup kTiny{"tiny", 6, 5, 6, 3, 12};
// Heavy writing into a 150-slot store that holds ~146 sampleable transitions, long sequences.
const Setup kSequences{"150-slot", 4, 1, 40, 8, 150};

void empty_errors(Kind kind, uint64_t calls, const Setup& setup) {
  const uint32_t envs = setup.envs, n_step = setup.n_step, episode = setup.episode;
  constexpr uint32_t kMaxLength = 8;
  const uint32_t length = setup.length;
  const uint64_t cap = setup.cap;
  std::unique_ptr<FrameStore> owned =
      kind == Kind::prioritized ? std::make_unique<PrioritizedStore>(cap, 16, 1, envs, 1, false, "", n_step, 0.9, 0.6)
                                : std::make_unique<FrameStore>(cap, 16, 1, envs, 1, false, "", n_step, 0.9);
  FrameStore& store = *owned;
  std::atomic<bool> stop{false};
  std::vector<std::atomic<uint64_t>> ready(envs);  // per writer: oldest frame of what it last made ready
  for (auto& r : ready) r.store(kNone);
  std::vector<std::thread> writers;
  for (uint32_t e = 0; e < envs; ++e)
    writers.emplace_back([&, e] {
      uint8_t f[16] = {uint8_t(e + 1)};
      std::vector<uint64_t> seqs;  // this episode's frames
      while (!stop.load(std::memory_order_relaxed)) {
        seqs.assign(1, store.start_episode(e, f));
        for (uint32_t k = 1; k <= episode && !stop.load(std::memory_order_relaxed); ++k) {
          const bool end = k == episode;
          seqs.push_back(store.add(e, StepRecord{0, 1.f, end, false}, f));
          // Transition j (the step that made frame j) is sampleable once its n-step window is
          // complete: j <= k - n + 1, or all of them at the episode's end. Its obs is frame j - 1
          // (stack 1); its sequence reaches back to frame j - length, or the episode's start.
          const int64_t j = end ? int64_t(k) : int64_t(k) - int64_t(n_step) + 1;
          if (j < 1) continue;
          const int64_t oldest = kind == Kind::sequences ? std::max<int64_t>(0, j - int64_t(length)) : j - 1;
          ready[e].store(seqs[size_t(oldest)], std::memory_order_release);
        }
      }
    });
  std::vector<uint8_t> obs(16), next(16), frames(16 * (length + 1));
  int64_t action[kMaxLength], index[1];
  float reward[kMaxLength], discount[1], weight[1];
  bool term[kMaxLength], trunc[kMaxLength], mask[kMaxLength];
  const TransitionOut o{obs.data(), next.data(), action, reward, term, trunc, index, discount};
  const SequenceOut so{frames.data(), action, reward, term, trunc, mask, index};
  uint64_t empties = 0, other = 0, held_calls = 0, errors_held = 0, zero_held = 0;
  std::string example;
  for (uint64_t c = 0; c < calls; ++c) {
    uint64_t bound = kNone;  // the newest announced frame
    for (auto& r : ready) {
      const uint64_t v = r.load(std::memory_order_acquire);
      if (v != kNone && (bound == kNone || v > bound)) bound = v;
    }
    std::string error;
    try {
      if (kind == Kind::uniform) store.sample(1, o);
      if (kind == Kind::prioritized) static_cast<PrioritizedStore&>(store).sample_prioritized(1, 0.4, o, weight);
      if (kind == Kind::sequences) store.sample_sequences(1, length, so);
    } catch (const std::exception& e) {
      error = e.what();
      ++(error == kEmpty ? empties : other);
    }
    const uint64_t size = store.size();
    const bool held = bound != kNone && bound + cap >= store.writes();
    held_calls += held;
    if (held && !error.empty() && ++errors_held == 1) example = error;
    zero_held += held && size == 0;
    std::this_thread::yield();  // let the writers run
  }
  stop.store(true);
  for (auto& t : writers) t.join();
  const char* name = kind == Kind::uniform ? "sample" : kind == Kind::prioritized ? "sample_prioritized" : "sample_sequences";
  std::printf("empty %s %s: calls=%llu held_throughout=%llu empty_errors=%llu other_errors=%llu errors_while_held=%llu "
              "size0_while_held=%llu writes=%llu\n",
              setup.name, name, (unsigned long long)calls, (unsigned long long)held_calls, (unsigned long long)empties,
              (unsigned long long)other, (unsigned long long)errors_held, (unsigned long long)zero_held,
              (unsigned long long)store.writes());
  expect(errors_held == 0, std::string(name) + " raised while a transition was sampleable throughout: " + example);
  expect(zero_held == 0, "size() read 0 while a transition was sampleable throughout");
  expect(held_calls > 0, "no call had a transition sampleable throughout (nothing was checked)");
  checked_calls += calls;
}

// ---- stacked ------------------------------------------------------------------------------------

constexpr uint64_t kFrame = 64;
void fill(uint8_t* f, uint32_t ep, uint32_t step) {
  for (uint64_t k = 0; k < kFrame; ++k) f[k] = uint8_t((k % 2 ? ep : step) + 1 + k);
}
bool is_frame(const uint8_t* f, uint32_t ep, uint32_t step) {
  for (uint64_t k = 0; k < kFrame; ++k)
    if (f[k] != uint8_t((k % 2 ? ep : step) + 1 + k)) return false;
  return true;
}

void stacked_while_episodes_start(uint64_t ops) {
  const uint32_t stack = 4;
  FrameStore store(64, kFrame, stack, 1, 1, false, "", 1, 0.9);
  std::vector<uint8_t> f(kFrame);
  fill(f.data(), 0, 0);
  store.start_episode(0, f.data());  // the stream has a frame from here on
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> calls{0}, no_frame{0}, bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&] {
      std::vector<uint8_t> out(stack * kFrame);
      std::vector<uint8_t> zero(kFrame, 0);
      while (!stop.load(std::memory_order_relaxed)) {
        calls.fetch_add(1, std::memory_order_relaxed);
        try {
          store.stacked(0, out.data());
        } catch (const std::invalid_argument&) {
          no_frame.fetch_add(1);
          continue;
        }
        // Zero padding, then steps 0..s of one episode: the newest frame names them.
        const uint8_t* newest = out.data() + (stack - 1) * kFrame;
        const uint32_t step = uint32_t(uint8_t(newest[0] - 1)), ep = uint32_t(uint8_t(newest[1] - 2));
        for (uint32_t k = 0; k < stack; ++k) {
          const int64_t want = int64_t(step) - int64_t(stack - 1 - k);
          const uint8_t* got = out.data() + k * kFrame;
          const bool ok = want < 0 ? std::memcmp(got, zero.data(), kFrame) == 0 : is_frame(got, ep, uint32_t(want));
          if (!ok) {
            bad.fetch_add(1);
            break;
          }
        }
      }
    });
  uint32_t ep = 0, step = 0;
  // The writer goes on until the readers have made ops calls too, so the count checked does not
  // depend on how the threads were scheduled (a busy machine starves the readers, not the check).
  uint64_t i = 1;
  for (; i <= ops || calls.load(std::memory_order_relaxed) < ops; ++i) {
    if (i % 3 == 0) {
      ep = (ep + 1) % 200;
      step = 0;
      fill(f.data(), ep, 0);
      store.start_episode(0, f.data());
    } else {
      fill(f.data(), ep, ++step);
      store.add(0, StepRecord{}, f.data());
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  std::printf("stacked: writer_calls=%llu stacked_calls=%llu no_frame_errors=%llu mixed_states=%llu\n",
              (unsigned long long)(i - 1), (unsigned long long)calls.load(), (unsigned long long)no_frame.load(),
              (unsigned long long)bad.load());
  expect(no_frame.load() == 0, "stacked() said 'no frame yet' for a stream that always had one");
  expect(bad.load() == 0, "stacked() returned a state that is not one episode's consecutive frames");
  expect(calls.load() >= ops, "stacked() was called fewer times than the writer's operations");
  checked_calls += calls.load();
}

// ---- save ---------------------------------------------------------------------------------------

void save_while_sampling_and_updating(uint64_t snapshots, uint64_t cap, const std::string& dir) {
  PrioritizedStore store(cap, 16, 1, 1, 1, false, "", 1, 0.9, 0.6);
  uint8_t f[16] = {1};
  store.start_episode(0, f);
  for (uint64_t k = 0; k < cap + 100; ++k) store.add(0, StepRecord{int64_t(k), 1.f, false, false}, f);
  const uint64_t size = store.size();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> updates{0}, samples{0};
  std::thread updater([&] {  // a learner updating priorities after each batch
    std::vector<int64_t> idx(64);
    std::vector<double> pr(64);
    const int64_t lo = int64_t(store.writes() - cap + 1);
    for (uint64_t it = 0; !stop.load(std::memory_order_relaxed); ++it) {
      for (int i = 0; i < 64; ++i) {
        idx[size_t(i)] = lo + int64_t((it * 7919 + uint64_t(i) * 104729) % (cap - 1));
        pr[size_t(i)] = 0.5 + double(it % 13);
      }
      store.update_priorities(64, idx.data(), pr.data());
      updates.fetch_add(64, std::memory_order_relaxed);
    }
  });
  std::thread sampler([&] {
    std::vector<uint8_t> obs(16 * 32), next(16 * 32);
    int64_t action[32], index[32];
    float reward[32], discount[32], w[32];
    bool term[32], trunc[32];
    const TransitionOut o{obs.data(), next.data(), action, reward, term, trunc, index, discount};
    while (!stop.load(std::memory_order_relaxed)) {
      store.sample_prioritized(32, 0.4, o, w);
      samples.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const std::string path = dir + "/edges-save-while-sampling.bin";
  uint64_t bad = 0;
  std::string example;
  for (uint64_t i = 0; i < snapshots; ++i) {
    store.save(path, {16}, false);
    PrioritizedStore loaded(cap, 16, 1, 1, 1, false, "", 1, 0.9, 0.6);
    try {
      loaded.load(path);
      if (loaded.size() != size || loaded.valid_indices().size() != size) throw std::runtime_error("wrong size");
    } catch (const std::exception& e) {
      if (++bad == 1) example = e.what();
    }
  }
  stop.store(true);
  updater.join();
  sampler.join();
  std::remove(path.c_str());
  std::printf("save: snapshots=%llu unloadable=%llu priority_updates=%llu sample_calls=%llu\n",
              (unsigned long long)snapshots, (unsigned long long)bad, (unsigned long long)updates.load(),
              (unsigned long long)samples.load());
  expect(bad == 0, "a snapshot saved beside sampling and priority updates did not load: " + example);
  checked_calls += snapshots;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t calls = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  const std::string dir = argc > 2 ? argv[2] : ".";
  for (Kind k : {Kind::uniform, Kind::prioritized, Kind::sequences}) empty_errors(k, calls, kTiny);
  empty_errors(Kind::sequences, calls / 4, kSequences);
  stacked_while_episodes_start(10 * calls);
  save_while_sampling_and_updating(std::max<uint64_t>(4, calls / 500), calls >= 20000 ? 1 << 14 : 1 << 10, dir);
  std::printf("checked_calls=%llu failures=%d\n", (unsigned long long)checked_calls, failures);
  return failures == 0 ? 0 : 1;
}
