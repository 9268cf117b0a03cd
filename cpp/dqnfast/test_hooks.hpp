// Test hooks: test builds (-DDQNFAST_TEST_HOOKS) can pause a thread where a real one may be
// preempted, to replay races deterministically (cpp/tests/race_regressions.cpp). Elsewhere each
// hook compiles to nothing.
#pragma once

#include <cstdint>

#ifdef DQNFAST_TEST_HOOKS
namespace dqnfast {
namespace test_hooks {
// Writers
inline void (*before_link)(uint64_t prev) = nullptr;   // before a stream's n-step link from frame prev
inline void (*after_link)(uint64_t prev) = nullptr;    // after it (prev's window may be complete now)
inline void (*after_count)(uint64_t seq) = nullptr;    // add: transition seq counted, not yet written
inline void (*after_retire)(uint64_t seq) = nullptr;   // write seq: the slot's previous occupant uncounted
inline void (*after_publish)(uint64_t seq) = nullptr;  // right after a slot is published
inline void (*episode_reset)(uint64_t env) = nullptr;  // start_episode: the stream's state reset, frame not yet kept
// Readers
inline void (*in_size)(uint64_t) = nullptr;            // size(): between its first and second read
inline void (*in_stacked)(uint64_t env) = nullptr;     // stacked(): after reading the stream's version
inline void (*before_scan)(uint64_t head) = nullptr;   // a draw about to scan the window ending at head
// Snapshots
inline void (*after_hash)(uint64_t bytes) = nullptr;   // save(): bytes hashed, not yet handed to the file
}  // namespace test_hooks
}  // namespace dqnfast
#define DQNFAST_HOOK(name, arg)                                         \
  do {                                                                  \
    if (::dqnfast::test_hooks::name) ::dqnfast::test_hooks::name(arg); \
  } while (0)
#else
#define DQNFAST_HOOK(name, arg) \
  do {                          \
    (void)(arg);                \
  } while (0)
#endif
