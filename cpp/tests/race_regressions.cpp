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
#include <stdexcept>
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

// A second thread paused at its own point (stacked() against start_episode() pauses both sides).
struct Gate {
  std::atomic<int> phase{0};  // 0: open, 1: paused, 2: resumed
  std::atomic<int> calls{0};  // times the hook ran
  void maybe_pause() {
    if (calls.fetch_add(1) != 0) return;
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
  }
  void wait_paused() const {
    while (phase.load() != 1) std::this_thread::yield();
  }
  void resume() { phase.store(2); }
  void reset() {
    phase.store(0);
    calls.store(0);
  }
};
Gate reader_gate, writer_gate;

// Something a hook does once, on the thread that runs the hook (writes that land at that point).
std::function<void()> once;
void run_once() {
  std::function<void()> f = std::move(once);
  once = nullptr;
  if (f) f();
}

void reset_hooks() {
  test_hooks::before_link = nullptr;
  test_hooks::after_link = nullptr;
  test_hooks::after_count = nullptr;
  test_hooks::after_retire = nullptr;
  test_hooks::after_publish = nullptr;
  test_hooks::episode_reset = nullptr;
  test_hooks::in_size = nullptr;
  test_hooks::in_stacked = nullptr;
  test_hooks::before_scan = nullptr;
  test_hooks::after_hash = nullptr;
  pause.phase.store(0);
  reader_gate.reset();
  writer_gate.reset();
  once = nullptr;
}

// Output arrays for up to 64 one-step rows of stack-1 frames of 8 bytes.
struct Rows {
  std::vector<uint8_t> obs = std::vector<uint8_t>(8 * 64), next = std::vector<uint8_t>(8 * 64);
  int64_t action[64], index[64];
  float reward[64], discount[64], weights[64];
  bool term[64], trunc[64];
  TransitionOut out() { return {obs.data(), next.data(), action, reward, term, trunc, index, discount, 0, false}; }
};
struct SequenceRows {  // one sequence of up to 15 steps of 8-byte frames
  std::vector<uint8_t> frames = std::vector<uint8_t>(8 * 16);
  int64_t action[15], index[1];
  float reward[15];
  bool term[15], trunc[15], mask[15];
  SequenceOut out() { return {frames.data(), action, reward, term, trunc, mask, index}; }
};

enum class Sampler { uniform, prioritized, sequences };
const char* name(Sampler s) {
  return s == Sampler::uniform ? "sample" : s == Sampler::prioritized ? "sample_prioritized" : "sample_sequences";
}

// One call of the chosen sampler for one row; the row's index, or -1 (and a FAIL) if it threw.
int64_t sample_one(FrameStore& store, Sampler s, uint32_t length = 1) {
  Rows rows;
  SequenceRows seq;
  try {
    if (s == Sampler::uniform) store.sample(1, rows.out());
    if (s == Sampler::prioritized) static_cast<PrioritizedStore&>(store).sample_prioritized(1, 0.4, rows.out(), rows.weights);
    if (s == Sampler::sequences) {
      store.sample_sequences(1, length, seq.out());
      return seq.index[0];
    }
    return rows.index[0];
  } catch (const std::exception& e) {
    check(false, std::string(name(s)) + " threw: " + e.what());
    return -1;
  }
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


// A writer paused right after publishing a one-step transition: the transition is sampleable, so
// no sampler may call the buffer empty. (It was: the count was raised after publishing, so size()
// read 0 and sample*() raised "no sampleable transition".)
void sampleable_before_its_writer_returns(Sampler s) {
  std::printf("%s while the only transition's writer is paused after publishing it\n", name(s));
  reset_hooks();
  std::unique_ptr<FrameStore> owned =
      s == Sampler::prioritized ? std::make_unique<PrioritizedStore>(16, 8, 1, 1, 1, false, "", 1, 0.5, 0.6)
                                : std::make_unique<FrameStore>(16, 8, 1, 1, 1, false, "", 1, 0.5);
  FrameStore& store = *owned;
  std::vector<uint8_t> f(8, 1);
  pause.at = 1;
  test_hooks::after_publish = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] {
    store.start_episode(0, f.data());  // seq 0
    store.add(0, kStep, f.data());     // seq 1: published, then paused
  });
  pause.wait_paused();
  check(store.size() == 1, "size() = " + std::to_string(store.size()) + " with transition 1 published");
  check(sample_one(store, s) == 1, "did not draw transition 1");
  pause.resume();
  a.join();
  audit(store, {1});
}

// n-step: a writer paused right after the link that completes the window of waiting transitions:
// by a next step (n = 2), by a terminal step that completes every waiting one (n = 3), or by a new
// start_episode() that abandons the episode (n = 2). They were still on their stream's pending list
// then (they left it after the link), so size() subtracted them: 0, or too few.
enum class Completion { next_step, terminal_step, abandoned };
void sampleable_when_its_window_completes(Completion how) {
  const char* what = how == Completion::next_step       ? "a next step"
                     : how == Completion::terminal_step ? "a terminal step"
                                                        : "an abandoned episode";
  std::printf("sample with a writer paused after the link that completes windows: %s\n", what);
  reset_hooks();
  const uint32_t n = how == Completion::terminal_step ? 3 : 2;
  FrameStore store(16, 8, 1, 1, 1, false, "", n, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());                                   // seq 0
  for (uint32_t i = 1; i < n; ++i) store.add(0, kStep, f.data());  // 1 .. n - 1: waiting
  pause.at = n - 1;  // the link from the last waiting frame
  test_hooks::after_link = [](uint64_t prev) { pause.maybe_pause(prev); };
  std::thread a([&] {
    if (how == Completion::next_step) store.add(0, kStep, f.data());                             // seq 2
    if (how == Completion::terminal_step) store.add(0, StepRecord{1, 1.f, true, false}, f.data());  // seq 3
    if (how == Completion::abandoned) store.start_episode(0, f.data());                           // seq 2
  });
  pause.wait_paused();
  const std::vector<uint64_t> want = how == Completion::next_step       ? std::vector<uint64_t>{1}
                                     : how == Completion::terminal_step ? std::vector<uint64_t>{1, 2, 3}
                                                                        : std::vector<uint64_t>{1};
  check(store.size() == want.size(), "size() = " + std::to_string(store.size()) + ", " +
                                         std::to_string(want.size()) + " transitions complete");
  check(sample_one(store, Sampler::uniform) >= 1, "sample() did not draw");
  pause.resume();
  a.join();
  audit(store, want);
}

// A writer paused after uncounting the transitions whose oldest frame lived in the slot it takes:
// their frame must already be unpublished (it was unpublished after), or size() misses transitions
// that are still sampleable.
void counted_while_its_frame_is_stored() {
  std::printf("len while a writer retires a slot's previous occupant\n");
  reset_hooks();
  FrameStore store(4, 8, 1, 2, 1, false, "", 1, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());  // seq 0, slot 0
  store.add(0, kStep, f.data());     // seq 1: frames 0, 1
  store.start_episode(1, f.data());  // seq 2
  store.add(1, kStep, f.data());     // seq 3: frames 2, 3
  pause.at = 4;
  test_hooks::after_retire = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] { store.start_episode(1, f.data()); });  // seq 4 takes slot 0: retires frame 0
  pause.wait_paused();
  const size_t scan = store.valid_indices().size();
  check(store.size() >= scan, "size() = " + std::to_string(store.size()) + " with " + std::to_string(scan) +
                                  " transitions sampleable");
  pause.resume();
  a.join();
  audit(store, {3});
}

// A writer paused between counting its transition and writing it, while another writer retires
// the frame that transition needed (so the count it took is given back): valid_ must not drop
// below the other sampleable transitions meanwhile. (The slot's count was raised before valid_,
// so the retire subtracted an increment valid_ did not hold yet: 0 with transition 2 sampleable.)
void counted_before_its_oldest_frame_goes() {
  std::printf("sample while a counted transition loses its oldest frame\n");
  reset_hooks();
  FrameStore store(4, 8, 1, 2, 1, false, "", 1, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());  // seq 0, slot 0
  store.start_episode(1, f.data());  // seq 1
  store.add(1, kStep, f.data());     // seq 2: frames 1, 2
  pause.at = 3;
  test_hooks::after_count = [](uint64_t seq) { pause.maybe_pause(seq); };
  std::thread a([&] { store.add(0, kStep, f.data()); });  // seq 3 needs frame 0: counted, paused
  pause.wait_paused();
  store.start_episode(1, f.data());  // seq 4 takes slot 0: frame 0 and transition 3 with it
  check(store.size() >= 1, "size() = 0 with transition 2 sampleable");
  check(sample_one(store, Sampler::uniform) == 2, "did not draw transition 2");
  pause.resume();
  a.join();
  audit(store, {2});
}

// Adds that land while size() reads: they must not make it subtract a transition it did not count.
// (size() read the count first and the pending lists second, so a pending step added in between
// was subtracted without being counted: 0 with transition 1 sampleable throughout.)
void adds_during_size() {
  std::printf("sample while another stream adds in the middle of size()\n");
  reset_hooks();
  FrameStore store(16, 8, 1, 2, 1, false, "", 2, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());                           // seq 0
  for (int i = 0; i < 2; ++i) store.add(0, kStep, f.data());  // 1 (sampleable), 2 (pending)
  once = [&] {
    store.start_episode(1, f.data());  // seq 3
    store.add(1, kStep, f.data());     // seq 4: pending
  };
  test_hooks::in_size = [](uint64_t) { run_once(); };
  check(sample_one(store, Sampler::uniform) == 1, "did not draw transition 1");
  audit(store, {1});
}

// stacked() against a start_episode() on its stream that resets the stream after stacked() read
// the version: it must retry (and return the new episode's state), not say "no frame yet".
void stacked_during_start_episode() {
  std::printf("stacked during a start_episode on its stream\n");
  reset_hooks();
  FrameStore store(16, 8, 2, 1, 1, false, "", 1, 0.5);
  std::vector<uint8_t> f(8, 1), g(8, 2), out(16, 9);
  store.start_episode(0, f.data());
  store.add(0, kStep, f.data());
  test_hooks::in_stacked = [](uint64_t) { reader_gate.maybe_pause(); };
  test_hooks::episode_reset = [](uint64_t) { writer_gate.maybe_pause(); };
  std::atomic<bool> done{false};
  std::string error;
  std::thread r([&] {
    try {
      store.stacked(0, out.data());
    } catch (const std::exception& e) {
      error = e.what();
    }
    done.store(true);
  });
  reader_gate.wait_paused();                                // read an even version
  std::thread w([&] { store.start_episode(0, g.data()); });  // resets the stream, paused
  writer_gate.wait_paused();
  reader_gate.resume();
  // The reader either gives up (the bug) or comes back for the version (a retry; it then waits
  // for the writer, whose call is still under way).
  while (!done.load() && reader_gate.calls.load() < 2) std::this_thread::yield();
  writer_gate.resume();
  w.join();
  r.join();
  check(error.empty(), "stacked() threw: " + error);
  std::vector<uint8_t> want(16, 0);
  std::fill(want.begin() + 8, want.end(), 2);  // zero padding, then the new episode's first frame
  check(error.empty() && out == want, "stacked() did not return the new episode's state");
}

// sample_sequences: every draw fails (no stored sequence is whole), then writers land between the
// window's refresh and its scan, making a whole sequence just past the scanned window. One empty
// scan was final ("no transition has its whole sequence stored yet") although writers had moved on;
// now a scan that saw the cursor move is followed by another round.
void sequences_after_an_empty_scan() {
  std::printf("sample_sequences retries after an empty scan while writers move on\n");
  reset_hooks();
  FrameStore store(8, 8, 1, 2, 1, false, "", 1, 0.5);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());                            // seq 0
  for (int i = 0; i < 11; ++i) store.add(0, kStep, f.data());  // 1..11: frames 0..3 overwritten
  // Sequences of 8 steps need 9 frames of one episode (or its start): none is whole in [4, 12).
  once = [&] {
    store.start_episode(1, f.data());  // seq 12
    store.add(1, kStep, f.data());     // seq 13: whole from its episode's start
  };
  test_hooks::before_scan = [](uint64_t) { run_once(); };
  check(sample_one(store, Sampler::sequences, 8) == 13, "did not draw the sequence ending at 13");
}

// The prioritized fallback scan: all the tree's mass on transitions still waiting for their
// n-step future, the one sampleable transition at priority 0, then a new transition lands past
// the scanned window. One empty scan was final ("no sampleable transition has a positive
// priority"); now it is repeated while the cursor moves.
void prioritized_after_an_empty_scan() {
  std::printf("sample_prioritized retries its fallback scan while writers move on\n");
  reset_hooks();
  PrioritizedStore store(16, 8, 1, 3, 1, false, "", 3, 0.5, 0.6);
  std::vector<uint8_t> f(8, 1);
  store.start_episode(0, f.data());                           // seq 0
  for (int i = 0; i < 2; ++i) store.add(0, kStep, f.data());  // 1, 2: waiting, with leaves
  store.start_episode(1, f.data());                           // seq 3
  store.add(1, StepRecord{1, 1.f, true, false}, f.data());    // seq 4: sampleable
  const int64_t four = 4;
  const double zero = 0.0;
  store.update_priorities(1, &four, &zero);
  once = [&] {
    store.start_episode(2, f.data());                         // seq 5
    store.add(2, StepRecord{1, 1.f, true, false}, f.data());  // seq 6: sampleable, leaf > 0
  };
  test_hooks::before_scan = [](uint64_t) { run_once(); };
  check(sample_one(store, Sampler::prioritized) == 6, "did not draw transition 6");
}

// save() while update_priorities changes a leaf after its bytes were hashed and before they reach
// the file: the file must still load, and hold the leaves as they were copied.
void save_while_a_priority_changes(const std::string& dir) {
  std::printf("a prioritized snapshot saved while a priority changes loads\n");
  reset_hooks();
  static constexpr uint64_t kCap = 64;
  PrioritizedStore store(kCap, 16, 1, 1, 1, false, "", 1, 0.5, 1.0);
  std::vector<uint8_t> f(16, 1);
  store.start_episode(0, f.data());
  for (int i = 0; i < 39; ++i) store.add(0, kStep, f.data());  // 40 of 64 slots: the leaves are the
  // only kCap * 8-byte write of the snapshot
  std::vector<double> before(kCap);
  for (uint64_t i = 0; i < kCap; ++i) before[i] = store.leaf(i);
  const std::string path = dir + "/priority-changed-during-save.bin";
  once = [&] {
    const int64_t t = 7;
    const double p = 5.0;
    store.update_priorities(1, &t, &p);
  };
  test_hooks::after_hash = [](uint64_t bytes) {
    if (bytes == kCap * 8) run_once();
  };
  store.save(path, {16}, false);
  check(once == nullptr && store.leaf(7) == 5.0, "the priority was not changed during save()");
  PrioritizedStore loaded(kCap, 16, 1, 1, 1, false, "", 1, 0.5, 1.0);
  try {
    loaded.load(path);
    bool same = true;
    for (uint64_t i = 0; i < kCap; ++i) same &= loaded.leaf(i) == before[i];
    check(same, "the loaded leaves are not those saved");
  } catch (const std::exception& e) {
    check(false, std::string("load() refused the snapshot: ") + e.what());
  }
  std::remove(path.c_str());
}

// The exact progress promise of docs/design.md ("Who waits"): one writer paused holding an
// unpublished sequence number s lets the other writers write every sequence number up to
// s + capacity - 1 (a lap less one), and
// samplers and the other streams' stacked() go on. (The writer of s + capacity then waits.)
void a_paused_writer_costs_the_others_one_lap() {
  std::printf("a writer paused mid-call lets the others write one lap less one frame\n");
  reset_hooks();
  static constexpr uint64_t kCap = 8;
  FrameStore store(kCap, 8, 1, 2, 1, false, "", 2, 0.5);
  std::vector<uint8_t> f(8, 1), out(8);
  store.start_episode(0, f.data());  // seq 0
  store.add(0, kStep, f.data());     // seq 1
  pause.at = 1;
  test_hooks::before_link = [](uint64_t prev) { pause.maybe_pause(prev); };
  std::thread a([&] { store.start_episode(0, f.data()); });  // seq 2, abandons 0's episode: paused
  pause.wait_paused();
  store.start_episode(1, f.data());                                      // seq 3
  for (uint64_t s = 4; s < 2 + kCap; ++s) store.add(1, kStep, f.data());  // 4 .. 9 = 2 + capacity - 1
  check(store.writes() == 2 + kCap, "writes() = " + std::to_string(store.writes()));
  check(sample_one(store, Sampler::uniform) >= 0, "sampling stopped");
  store.stacked(1, out.data());
  pause.resume();
  a.join();
  store.add(1, kStep, f.data());  // seq 10 = 2 + capacity reuses seq 2's slot: fine once it is published
  check(store.writes() == 3 + kCap, "the write after the paused one did not go through");
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
  for (Sampler sm : {Sampler::uniform, Sampler::prioritized, Sampler::sequences}) sampleable_before_its_writer_returns(sm);
  for (Completion how : {Completion::next_step, Completion::terminal_step, Completion::abandoned})
    sampleable_when_its_window_completes(how);
  counted_while_its_frame_is_stored();
  counted_before_its_oldest_frame_goes();
  adds_during_size();
  stacked_during_start_episode();
  sequences_after_an_empty_scan();
  prioritized_after_an_empty_scan();
  save_while_a_priority_changes(argc > 1 ? argv[1] : ".");
  a_paused_writer_costs_the_others_one_lap();
  std::printf("failures=%d\n", failures);
  return failures == 0 ? 0 : 1;
}
