// Deterministic regression tests for check-then-act races between concurrent writers.
//
//   g++ -std=c++17 -O2 -DDQNFAST_TEST_HOOKS -Icpp cpp/tests/race_regressions.cpp -o race_regressions -pthread
//   ./race_regressions [scratch dir]   # one line per case, exit code 0 when all pass
//
// Each case pauses one writer thread at a point where a real writer can be preempted (a test hook,
// compiled in only with -DDQNFAST_TEST_HOOKS), lets other writers lap the store meanwhile, resumes
// it, and then checks the quiescent store: len() equals a full validity scan, the expected
// transitions are sampleable, and with prioritized replay every sampleable transition can be drawn.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dqnfast/frame_store.hpp"
#include "dqnfast/prioritized.hpp"

#ifndef DQNFAST_TEST_HOOKS
#error "build with -DDQNFAST_TEST_HOOKS"
#endif

using namespace dqnfast;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("  FAIL: %s\n", what.c_str());
  }
}

std::string show(const std::vector<uint64_t>& v) {
  std::string s = "[";
  for (uint64_t t : v) s += " " + std::to_string(t);
  return s + " ]";
}

// One paused writer: `pause_at(seq)` is called from a hook; the first call with the chosen seq
// blocks until resume().
struct Pause {
  std::atomic<int> phase{0};  // 0: not reached, 1: paused, 2: resumed
  uint64_t at = 0;
  void maybe_pause(uint64_t seq) {
    if (seq != at || phase.load() != 0) return;
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
  }
  void wait_paused() const {
    while (phase.load() != 1) std::this_thread::yield();
  }
  void resume() { phase.store(2); }
};
Pause pause;

void reset_hooks() {
  test_hooks::before_link = nullptr;
  test_hooks::after_publish = nullptr;
  pause.phase.store(0);
}

const StepRecord kStep{1, 1.f, false, false};

// The quiescent store agrees with itself: size() == a full scan, and `expect` is exactly the scan.
void audit(const FrameStore& store, const std::vector<uint64_t>& expect) {
  const std::vector<uint64_t> valid = store.valid_indices();
  check(store.size() == valid.size(),
        "size() = " + std::to_string(store.size()) + " but the scan finds " + show(valid));
  check(valid == expect, "sampleable " + show(valid) + ", expected " + show(expect));
}

// A writer paused between checking that the previous frame still holds its own transition and
// installing the n-step link from it; meanwhile the slot is lapped and its new occupant linked.
void lost_link(uint32_t n) {
  std::printf("lost n-step link, n_step=%u\n", n);
  reset_hooks();
  FrameStore store(4, 8, 1, 2, 1, false, "", n, 0.5);  // 2 envs, stack 1, the minimum capacity
  std::vector<uint8_t> f(8, 1);
  pause.at = 0;
  test_hooks::before_link = [](uint64_t prev) { pause.maybe_pause(prev); };
  std::thread a([&] {
    store.start_episode(0, f.data());  // seq 0, slot 0
    store.add(0, kStep, f.data());     // seq 1: pauses before linking 0 -> 1
  });
  pause.wait_paused();
  store.start_episode(1, f.data());  // seq 2
  for (int i = 0; i < 3; ++i) store.add(1, kStep, f.data());  // seqs 3, 4 (slot 0), 5: links 4 -> 5
  pause.resume();
  a.join();
  // Env 1: 2 (start), 3, 4, 5. Transition 3 needs frames 2, 3 and links 3 -> 4 (-> 5 for n = 3).
  if (n == 2) audit(store, {3, 4});
  if (n == 3) audit(store, {3});
}

// The same pattern when a new start_episode ends an episode without a terminal step: the
// abandoned-episode marker for its last frame must not land on a slot that has been reused.
void lost_abandoned_link() {
  std::printf("lost n-step link when an episode is abandoned\n");
  reset_hooks();
  FrameStore store(8, 8, 1, 2, 1, false, "", 2, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());  // seq 0
  store.add(0, kStep, f.data());     // seq 1 (slot 1), env 0's episode goes on
  store.start_episode(1, f.data());  // seq 2
  store.add(1, kStep, f.data());     // seq 3
  pause.at = 1;
  test_hooks::before_link = [](uint64_t prev) { pause.maybe_pause(prev); };
  std::thread a([&] { store.start_episode(0, f.data()); });  // seq 4: ends env 0's episode after 1, pauses
  pause.wait_paused();
  for (int i = 0; i < 6; ++i) store.add(1, kStep, f.data());  // seqs 5..10; 9 reuses slot 1, links 9 -> 10
  pause.resume();
  a.join();
  audit(store, {5, 6, 7, 8, 9});  // 3 lost frame 2; 10 waits for its successor
}

// A writer paused between publishing an episode's first frame and setting its sum-tree leaf while
// another writer reuses the slot for a transition.
void per_leaf() {
  std::printf("prioritized leaf set after its slot was reused\n");
  reset_hooks();
  PrioritizedStore store(4, 8, 1, 2, 1, false, "", 1, 0.99, 0.6);
  std::vector<uint8_t> f(8, 1);
  pause.at = 0;
  test_hooks::after_publish = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] { store.start_episode(0, f.data()); });  // seq 0: published, leaf not yet set
  pause.wait_paused();
  store.start_episode(1, f.data());  // seq 1
  for (int i = 0; i < 3; ++i) store.add(1, kStep, f.data());  // seqs 2, 3, 4 (slot 0)
  pause.resume();
  a.join();
  audit(store, {2, 3, 4});
  for (uint64_t t : store.valid_indices())
    check(store.leaf(t % store.capacity()) > 0.0, "sampleable transition " + std::to_string(t) + " has leaf 0");
  // Every sampleable transition is drawn (each has probability 1/3 here).
  std::set<int64_t> seen;
  std::vector<uint8_t> obs(8 * 64), next(8 * 64);
  int64_t action[64], index[64];
  float reward[64], discount[64], w[64];
  bool term[64], trunc[64];
  const TransitionOut out{obs.data(), next.data(), action, reward, term, trunc, index, discount, 0, false};
  for (int i = 0; i < 20; ++i) {
    store.sample_prioritized(64, 0.4, out, w);
    seen.insert(index, index + 64);
  }
  check(seen == std::set<int64_t>{2, 3, 4}, "1280 prioritized draws did not return each of 2, 3, 4");
}

// The same for a transition published late over an episode start in the same slot: the leaf must
// end at 0 (an episode start is never drawn), not at the late writer's priority.
void per_leaf_of_episode_start() {
  std::printf("prioritized leaf of an episode start that replaced a late transition\n");
  reset_hooks();
  PrioritizedStore store(4, 8, 1, 2, 1, false, "", 1, 0.99, 0.6);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());  // seq 0
  pause.at = 1;
  test_hooks::after_publish = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] { store.add(0, kStep, f.data()); });  // seq 1 (slot 1): published, leaf not yet set
  pause.wait_paused();
  store.start_episode(1, f.data());  // seq 2
  store.add(1, kStep, f.data());     // seq 3
  store.add(1, StepRecord{1, 1.f, true, false}, f.data());  // seq 4 (slot 0), terminal
  store.start_episode(1, f.data());  // seq 5 (slot 1): an episode start
  pause.resume();
  a.join();
  check(store.leaf(1) == 0.0, "the episode start in slot 1 has leaf " + std::to_string(store.leaf(1)));
  audit(store, {3, 4});
}

// Two threads writing the same env stream at once are refused, and nothing is written for the
// refused call.
void one_writer_per_stream() {
  std::printf("a second writer on a stream that is being written is refused\n");
  reset_hooks();
  FrameStore store(16, 8, 2, 2, 1, false, "", 1, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());  // seq 0
  pause.at = 1;
  test_hooks::after_publish = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] { store.add(0, kStep, f.data()); });  // seq 1: paused inside add
  pause.wait_paused();
  bool refused = false;
  try {
    store.add(0, kStep, f.data());
  } catch (const std::logic_error& e) {
    refused = std::string(e.what()).find("another thread") != std::string::npos;
  }
  check(refused, "a concurrent add() on the same env was not refused");
  check(store.writes() == 2, "the refused add() took a sequence number");
  pause.resume();
  a.join();
  store.add(0, kStep, f.data());  // fine again once the first writer is done
  audit(store, {1, 2});
}

// Snapshots written before owner marks hold 0 in the link word of a frame not linked yet; after
// loading one, the stream that was mid-episode must still link its next step.
struct OldFormat : FrameStore {
  using FrameStore::FrameStore;
  void forget_owner_marks() {
    for (uint64_t i = 0; i < capacity_; ++i)
      if (!(next_[i].load() & kLinkSet)) next_[i].store(0);
  }
};

void snapshot_before_owner_marks(const std::string& dir) {
  std::printf("a snapshot from before owner marks links on after loading\n");
  reset_hooks();
  const std::string path = dir + "/old-format-snapshot.bin";
  std::vector<uint8_t> f(8, 1);
  {
    OldFormat store(16, 8, 1, 1, 1, false, "", 3, 0.5);
    store.start_episode(0, f.data());                           // seq 0
    for (int i = 0; i < 3; ++i) store.add(0, kStep, f.data());  // 1, 2, 3: 1 is sampleable
    store.forget_owner_marks();
    store.save(path, {8});
  }
  FrameStore store(16, 8, 1, 1, 1, false, "", 3, 0.5);
  store.load(path);
  for (int i = 0; i < 2; ++i) store.add(0, kStep, f.data());  // 4, 5: links 3 -> 4 -> 5
  audit(store, {1, 2, 3});
  std::remove(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  lost_link(2);
  lost_link(3);
  lost_abandoned_link();
  per_leaf();
  per_leaf_of_episode_start();
  one_writer_per_stream();
  snapshot_before_owner_marks(argc > 1 ? argv[1] : ".");
  std::printf("failures=%d\n", failures);
  return failures == 0 ? 0 : 1;
}
