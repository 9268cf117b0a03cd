// What one stalled writer costs the others (docs/design.md, "Concurrency", "Who waits"): a
// writer is paused inside start_episode() holding a sequence number it has not published (a test
// hook stands in for a preempted thread), while `writers` other threads add to their own streams
// and one thread samples.
//
//   g++ -std=c++17 -O2 -DDQNFAST_TEST_HOOKS -Icpp tools/stalled_writer.cpp -o stalled_writer -pthread
//   ./stalled_writer CAPACITY [FRAME_BYTES=7056] [WRITERS=2]
//
// Prints the writes the others completed after the pause began (at most capacity - 1: the writer of
// the paused number + capacity waits for it), the time until they stopped, their write rate until
// then, and whether sampling and stacked() of the other streams went on while they were stopped.
// A measurement, not a test: "stopped" means no write for 300 ms.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "dqnfast/frame_store.hpp"

using namespace dqnfast;
using Clock = std::chrono::steady_clock;

static std::atomic<bool> armed{false}, paused{false}, release_it{false};

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CAPACITY [FRAME_BYTES] [WRITERS]\n", argv[0]);
    return 2;
  }
  const uint64_t cap = std::strtoull(argv[1], nullptr, 10);
  const uint64_t fb = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 84 * 84;
  const uint32_t writers = argc > 3 ? uint32_t(std::atoi(argv[3])) : 2;
  FrameStore store(cap, fb, 4, writers + 1, 1, false, "", 1, 0.99);
  std::vector<uint8_t> f(fb, 7);
  // Fill the store first, so the measured writes all overwrite (as in a long run).
  for (uint32_t e = 0; e <= writers; ++e) store.start_episode(e, f.data());
  while (store.writes() < cap)
    for (uint32_t e = 0; e <= writers; ++e) store.add(e, StepRecord{}, f.data());
  test_hooks::episode_reset = [](uint64_t env) {
    if (env == 0 && armed.exchange(false)) {
      paused.store(true);
      while (!release_it.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  armed.store(true);
  std::thread victim([&] { store.start_episode(0, f.data()); });
  while (!paused.load()) std::this_thread::yield();
  const uint64_t held = store.writes() - 1;
  const auto t0 = Clock::now();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, samples{0}, states{0};
  std::atomic<int64_t> last_ns{0};
  std::vector<std::thread> others;
  for (uint32_t e = 1; e <= writers; ++e)
    others.emplace_back([&, e] {
      while (!stop.load(std::memory_order_relaxed)) {
        store.add(e, StepRecord{}, f.data());
        done.fetch_add(1, std::memory_order_relaxed);
        last_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      }
    });
  // Wait until the other writers have stopped (no write for 300 ms).
  uint64_t seen = 0;
  for (auto quiet = Clock::now();;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t now = done.load();
    if (now != seen) {
      seen = now;
      quiet = Clock::now();
    } else if (Clock::now() - quiet > std::chrono::milliseconds(300)) {
      break;
    }
  }
  // While they are stopped: sampling, and the state of a stream whose writer is not inside a call.
  std::thread sampler([&] {
    std::vector<uint8_t> o(4 * fb), n(4 * fb);
    int64_t a, i;
    float r, d;
    bool te, tr;
    const TransitionOut out{o.data(), n.data(), &a, &r, &te, &tr, &i, &d};
    for (int k = 0; k < 1000; ++k) {
      store.sample(1, out);
      samples.fetch_add(1);
    }
  });
  sampler.join();
  const double secs = double(last_ns.load()) * 1e-9;
  std::printf("capacity=%llu frame_bytes=%llu other_writers=%u paused_seq=%llu other_writes_after_pause=%llu "
              "(capacity - 1 = %llu) stopped_after_s=%.4f rate_writes_per_s=%.0f samples_while_stopped=%llu\n",
              (unsigned long long)cap, (unsigned long long)fb, writers, (unsigned long long)held,
              (unsigned long long)done.load(), (unsigned long long)(cap - 1), secs,
              secs > 0 ? double(done.load()) / secs : 0.0, (unsigned long long)samples.load());
  release_it.store(true);
  victim.join();
  stop.store(true);
  for (auto& t : others) t.join();
  return 0;
}
