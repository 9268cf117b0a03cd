// Lock-free circular frame store: each observation frame is stored once, stacked states are
// assembled at sample time, and no state ever mixes two episodes or two env streams.
//
// Layout. Every write (an episode's first frame, or one env step) takes the next global sequence
// number `seq` from an atomic cursor and lands in slot seq % capacity. A slot holds the frame, the
// step's action/reward/flags, and `hist`: the sequence numbers of this frame and of the `stack`
// frames before it in the same episode (kNone where the episode had not started yet). A step
// written at seq t is transition t: obs = frames hist[stack..1], next_obs = frames hist[stack-1..0].
//
// Concurrency. Each env stream is fed by one thread at a time (a second writer on a stream that is
// being written is refused); any number of threads may sample. There is no mutex: every slot
// carries a seqlock word `pub` (seq + 1 once published, 0 while being written). Readers check `pub`
// before and after copying, so a frame overwritten mid-copy is detected and the draw is repeated.
// The sampleable-transition count is exact when quiescent: a transition stops being sampleable
// exactly when the oldest frame of its obs is overwritten, so each slot counts the transitions
// whose oldest frame it holds (tagged with the frame's seq so a late increment for an already
// overwritten frame is never counted).
//
// Anything a writer sets in a slot after checking that the slot still holds its frame must not
// land after the slot was reused (a writer can be preempted between the check and the store):
// - n-step links: writing a slot sets its link word to an owner mark of the new occupant, and a
//   link is installed by a compare-exchange from its frame's own owner mark, so a stale writer's
//   link fails instead of replacing the new occupant's;
// - prioritized leaves: on_write sets a slot's leaf before the slot is published, while no other
//   writer can take it; other leaf changes check the slot under the sum tree's lock.
//
// The count never reads below the transitions that stay sampleable during the read (see size()),
// so sample*() calls the buffer empty only when it was empty throughout; a scan that comes up
// empty while writers move the window on is repeated (see draw_where()).
//
// Progress. Samplers never wait (a draw that meets a slot being written is repeated). Writers take
// no lock and never wait for samplers. One wait remains between writers: the writer of seq waits
// until seq - capacity, the slot's previous occupant, is published, so two writers never fill one
// slot. It waits only on a writer that took its sequence number a whole lap of the store earlier
// and has not finished writing one frame since (preempted), never in a single-threaded run; but
// then it waits inside its own call, so the writer of seq + capacity waits for it in turn: one
// stalled writer stops all the others after about one lap each (docs/design.md, "Who waits").
//
// Under ThreadSanitizer (-DDQNFAST_TSAN) frame and metadata copies are byte-wise atomic accesses
// (acquire loads, release stores) in place of memcpy + fences, which TSan does not model: the
// seqlock is then free of data races in the C++ memory model and TSan checks everything else.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dqnfast/augment.hpp"
#include "dqnfast/io.hpp"
#include "dqnfast/rng.hpp"
#include "dqnfast/test_hooks.hpp"

#include <sys/mman.h>

namespace dqnfast {

constexpr uint64_t kNone = ~0ULL;  // "no frame": padding before an episode's first frame

enum SlotFlags : uint8_t { kFirst = 1, kTerminated = 2, kTruncated = 4 };

// Copies that may race with a writer on the same slot (the seqlock detects it afterwards).
inline void racy_copy(void* dst, const void* src, size_t n) {
#ifdef DQNFAST_TSAN
  auto* d = static_cast<unsigned char*>(dst);
  auto* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) __atomic_store_n(d + i, __atomic_load_n(s + i, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
#else
  std::memcpy(dst, src, n);
#endif
}

// The seqlock's fences: the writer's between "slot busy" and the data, the reader's between the
// data and the re-check. Under TSan the acquire/release copies above provide that ordering.
inline void seqlock_release_fence() {
#ifndef DQNFAST_TSAN
  std::atomic_thread_fence(std::memory_order_release);
#endif
}
inline void seqlock_acquire_fence() {
#ifndef DQNFAST_TSAN
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
}

// Zero-filled memory for the frame store. In RAM, a large store is an anonymous mapping advised to
// use transparent huge pages (filling a 7 GB store then takes ~3,500 page faults instead of ~1.7M).
// With a path, it is a shared mapping of a scratch file there, so a store larger than RAM is paged
// to disk by the kernel; the file is removed with the store.
class FrameMemory {
 public:
  FrameMemory(uint64_t n, const std::string& path = "") : n_(n), path_(path) {
    if (!path.empty()) {
      const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) throw io::os_error("cannot create the storage file", path);
      if (::ftruncate(fd, off_t(n)) != 0) {
        ::close(fd);
        ::unlink(path.c_str());
        throw io::os_error("cannot size the storage file", path);
      }
      void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ::close(fd);  // the mapping keeps the file open
      if (p == MAP_FAILED) {
        ::unlink(path.c_str());
        throw io::os_error("cannot map the storage file", path);
      }
      p_ = static_cast<uint8_t*>(p);
      mapped_ = true;
      return;
    }
    if (n >= (uint64_t(2) << 20)) {
      void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
      madvise(p, n, MADV_HUGEPAGE);  // a hint: ignoring failure is fine
#endif
      p_ = static_cast<uint8_t*>(p);
      mapped_ = true;
      return;
    }
    p_ = static_cast<uint8_t*>(std::calloc(n, 1));
    if (!p_) throw std::bad_alloc();
  }
  ~FrameMemory() {
    if (mapped_) {
      munmap(p_, n_);
      if (!path_.empty()) ::unlink(path_.c_str());
    } else {
      std::free(p_);
    }
  }
  FrameMemory(const FrameMemory&) = delete;
  FrameMemory& operator=(const FrameMemory&) = delete;
  uint8_t* get() const { return p_; }

 private:
  uint8_t* p_ = nullptr;
  uint64_t n_;
  std::string path_;
  bool mapped_ = false;
};

struct SequenceOut {  // where one sampled sequence of `length` steps goes
  uint8_t* frames;     // (length + 1) * frame_bytes, oldest first
  int64_t* action;     // length entries each
  float* reward;
  bool* terminated;
  bool* truncated;
  bool* mask;          // false for steps before the episode's start
  int64_t* index;      // one: the last transition
};

struct StepRecord {  // one env step as handed to add()
  int64_t action = 0;
  float reward = 0.f;
  bool terminated = false;
  bool truncated = false;
};

struct TransitionOut {  // where one sampled transition goes (row 0 of a batch; see FrameStore::offset)
  uint8_t* obs;         // stack * frame_bytes
  uint8_t* next_obs;    // stack * frame_bytes
  int64_t* action;
  float* reward;
  bool* terminated;
  bool* truncated;
  int64_t* index;
  float* discount;      // gamma^m, m = the steps the n-step window spans
  // Bytes from row b to row b + 1 of obs and next_obs; 0: dense rows, stack * frame_bytes.
  uint64_t row_stride = 0;
  // The shared-frames layout (n_step == 1 only): next_obs == obs + frame_bytes, rows of
  // (stack + 1) * frame_bytes, so obs and next_obs are two overlapping views of one row of
  // stack + 1 frames and each frame is written once.
  bool shared = false;
  // Random shift (augment.hpp): set per row by sample() when it shifts; null copies frames as stored.
  const ShiftGeometry* shift_geometry = nullptr;
  ShiftOffsets offsets{};
};

class FrameStore {
 public:
  static constexpr uint32_t kMaxStack = 1024;      // the per-slot counters hold up to 16 bits
  static constexpr int kMaxRejectsPerDraw = 256;   // then fall back to a scan of the window
  static constexpr uint32_t kMaxNStep = 1000;

  // pad_first: frames before an episode's start are its first frame repeated (gymnasium's
  // FrameStackObservation) instead of zeros (Dopamine, RLlib).
  // storage_path: keep the frames in a file-backed map there (see FrameMemory) instead of RAM.
  // n_step, gamma: transitions carry n-step returns computed at sample time (see read_transition).
  FrameStore(uint64_t capacity, uint64_t frame_bytes, uint32_t stack, uint32_t num_envs, uint64_t seed,
             bool pad_first = false, const std::string& storage_path = "", uint32_t n_step = 1, double gamma = 0.99)
      : capacity_(capacity), frame_bytes_(frame_bytes), stack_(stack), num_envs_(num_envs), seed_(seed),
        pad_first_(pad_first), n_step_(n_step), gamma_(gamma) {
    if (n_step == 0 || n_step > kMaxNStep)
      throw std::invalid_argument("n_step must be in [1, " + std::to_string(kMaxNStep) + "], got " + std::to_string(n_step));
    if (!(gamma >= 0.0 && gamma <= 1.0)) throw std::invalid_argument("gamma must be in [0, 1]");
    if (capacity == 0) throw std::invalid_argument("capacity must be positive");
    if (frame_bytes == 0) throw std::invalid_argument("frame_shape must have no zero dimension");
    if (stack == 0 || stack > kMaxStack)
      throw std::invalid_argument("stack must be in [1, " + std::to_string(kMaxStack) + "], got " + std::to_string(stack));
    if (num_envs == 0) throw std::invalid_argument("num_envs must be positive");
    const uint64_t min_capacity = uint64_t(num_envs) * (stack + 1);
    if (capacity < min_capacity)
      throw std::invalid_argument("capacity must be at least num_envs * (stack + 1) = " + std::to_string(min_capacity) +
                                  " frame slots, got " + std::to_string(capacity));
    const uint64_t hist_len = uint64_t(stack) + 1;
    if (capacity > (std::numeric_limits<uint64_t>::max() >> 20) / frame_bytes ||
        capacity > (std::numeric_limits<uint64_t>::max() >> 20) / (hist_len * 8))
      throw std::bad_alloc();
    // Untouched pages of a large store cost no resident memory until written.
    frames_ = std::make_unique<FrameMemory>(capacity * frame_bytes, storage_path);
    pub_.reset(new std::atomic<uint64_t>[capacity]());
    expire_.reset(new std::atomic<uint64_t>[capacity]());
    next_.reset(new std::atomic<uint64_t>[capacity]());
    meta_.reset(new Meta[capacity]());
    hist_.reset(new uint64_t[capacity * hist_len]());
    streams_.reset(new Stream[num_envs]());
    for (uint32_t e = 0; e < num_envs; ++e) {
      streams_[e].hist.assign(hist_len, kNone);
      streams_[e].recent.assign(size_t(stack) * frame_bytes, 0);
      streams_[e].pending.reset(new std::atomic<uint64_t>[n_step]());
    }
  }

  virtual ~FrameStore() = default;
  FrameStore(const FrameStore&) = delete;
  FrameStore& operator=(const FrameStore&) = delete;

  // ---- properties -------------------------------------------------------------------------
  uint64_t capacity() const { return capacity_; }
  uint64_t frame_bytes() const { return frame_bytes_; }
  uint32_t stack() const { return stack_; }
  uint32_t num_envs() const { return num_envs_; }
  uint64_t seed() const { return seed_; }
  bool pad_first() const { return pad_first_; }
  uint32_t n_step() const { return n_step_; }
  double gamma() const { return gamma_; }
  uint64_t writes() const { return head_.load(std::memory_order_acquire); }
  uint64_t sample_calls() const { return calls_.load(std::memory_order_acquire); }
  // Sampleable transitions (exact when no write is in flight): those whose frames are all intact
  // (valid_), less those still waiting for their n-step future (the last n - 1 of each episode).
  //
  // While writers run it may count a transition that is being written, but never fewer than the
  // transitions that stay sampleable for the whole call (so sample() may trust a 0). That rests on
  // the order of a few steps, each named where it is done:
  //   - a writer counts a transition in valid_ before it enters a pending list and before its
  //     frame is published (add_at), and it leaves its pending list before the link that completes
  //     its window is installed (add_at, start_episode);
  //   - an overwritten transition's frame is unpublished before it is uncounted (write_slot);
  //   - here the pending lists are read first, valid_ second, and only entries whose frames are
  //     still stored after valid_ was read are subtracted: each of those was counted in the valid_
  //     read (counted before listed; uncounted only after its frames go), and was still waiting
  //     for its future during this call, so no transition sampleable throughout is subtracted.
  uint64_t size() const {
    if (n_step_ == 1) {
      const int64_t v = valid_.load(std::memory_order_acquire);
      return v > 0 ? uint64_t(v) : 0;
    }
    uint64_t few[64];            // the entries read (sample() calls this every time: no allocation
    std::vector<uint64_t> more;  // unless there are more than 64)
    size_t n_listed = 0;
    for (uint32_t e = 0; e < num_envs_; ++e) {
      const Stream& st = streams_[e];
      const uint64_t n = std::min<uint64_t>(st.n_pending.load(std::memory_order_acquire), n_step_ - 1);
      for (uint64_t i = 0; i < n; ++i, ++n_listed) {
        const uint64_t t = st.pending[i].load(std::memory_order_acquire);
        if (n_listed < 64) few[n_listed] = t;
        else more.push_back(t);
      }
    }
    DQNFAST_HOOK(in_size, 0);
    int64_t v = valid_.load(std::memory_order_acquire);
    for (size_t i = 0; i < n_listed; ++i) v -= frames_valid(i < 64 ? few[i] : more[i - 64]) ? 1 : 0;
    return v > 0 ? uint64_t(v) : 0;
  }
  uint64_t nbytes() const {
    return capacity_ * (frame_bytes_ + sizeof(Meta) + 3 * sizeof(uint64_t) + (stack_ + 1) * sizeof(uint64_t)) +
           num_envs_ * (sizeof(Stream) + (stack_ + 1) * sizeof(uint64_t) + stack_ * frame_bytes_);
  }
  // Safe to call from any thread.
  bool episode_active(uint32_t env) const { return streams_[env].active.load(std::memory_order_acquire); }

  // ---- writer side (one thread per env stream at a time) --------------------------------------
  // All arguments are validated before anything is written; frames are contiguous frame_bytes.
  void check_env(int64_t env) const {
    if (env < 0 || uint64_t(env) >= num_envs_)
      throw std::out_of_range("env " + std::to_string(env) + " out of range for num_envs=" + std::to_string(num_envs_));
  }
  void check_can_add(uint32_t env) const {
    if (!streams_[env].active.load(std::memory_order_relaxed))
      throw std::invalid_argument("env " + std::to_string(env) +
                                  ": add() before start_episode() (call start_episode(first_frame, env) after "
                                  "construction and after every terminated or truncated step)");
  }

  // A call that is refused (add() before start_episode(), or a stream that another thread is
  // writing: std::logic_error) throws before it takes a sequence number, so it writes nothing.
  uint64_t start_episode(uint32_t env, const uint8_t* frame) {
    StreamGuard guard(*this, 1, &env, false);
    const uint64_t seq = head_.fetch_add(1, std::memory_order_acq_rel);
    end_abandoned_episode(streams_[env]);
    begin_episode_in(streams_[env], env, seq, frame);
    write_slot(seq, env, frame, StepRecord{}, kFirst, streams_[env].hist.data());
    return seq;
  }

  uint64_t add(uint32_t env, const StepRecord& step, const uint8_t* frame) {
    StreamGuard guard(*this, 1, &env, true);
    const uint64_t seq = head_.fetch_add(1, std::memory_order_acq_rel);
    add_at(seq, env, step, frame);
    return seq;
  }

  // Several streams in one call (each env at most once): one cursor bump, rows in order of `envs`.
  void start_episodes(size_t n, const uint32_t* envs, const uint8_t* frames) {
    StreamGuard guard(*this, n, envs, false);
    const uint64_t base = head_.fetch_add(n, std::memory_order_acq_rel);
    for (size_t i = 0; i < n; ++i) {
      end_abandoned_episode(streams_[envs[i]]);
      begin_episode_in(streams_[envs[i]], envs[i], base + i, frames + i * frame_bytes_);
      write_slot(base + i, envs[i], frames + i * frame_bytes_, StepRecord{}, kFirst, streams_[envs[i]].hist.data());
    }
  }
  void add_many(size_t n, const uint32_t* envs, const StepRecord* steps, const uint8_t* frames) {
    StreamGuard guard(*this, n, envs, true);
    const uint64_t base = head_.fetch_add(n, std::memory_order_acq_rel);
    for (size_t i = 0; i < n; ++i) add_at(base + i, envs[i], steps[i], frames + i * frame_bytes_);
  }

  // ---- reader side ---------------------------------------------------------------------------
  // The state `env` acts on now, oldest frame first. It comes from the stream's own copy of its
  // last `stack` frames, so it is exact even when other streams have since overwritten those frames
  // in the store. Safe from any thread: read under the stream's seqlock, so a call racing with that
  // stream's writer returns the state before or after the write, never a mix (it waits while the
  // stream's writer is inside a call).
  void stacked(uint32_t env, uint8_t* out) const {
    const Stream& st = streams_[env];
    for (;;) {
      const uint64_t version = st.version.load(std::memory_order_acquire);
      DQNFAST_HOOK(in_stacked, env);
      if (version & 1) {  // that stream's writer is inside a call
        std::this_thread::yield();
        continue;
      }
      const uint64_t have = st.frames_in_episode.load(std::memory_order_acquire);
      if (have == 0) {
        // No frame yet, or a start_episode() that began after the version was read and has reset
        // the stream: only the version, read again, tells the two apart.
        seqlock_acquire_fence();
        if (st.version.load(std::memory_order_relaxed) != version) continue;
        throw std::invalid_argument("env " + std::to_string(env) + " has no frame yet: call start_episode() first");
      }
      for (uint32_t k = 0; k < stack_; ++k) {
        uint8_t* dst = out + size_t(k) * frame_bytes_;
        const uint64_t back = stack_ - 1 - k;  // frames before the newest
        if (back >= have && !pad_first_) {
          std::memset(dst, 0, frame_bytes_);
        } else if (back >= have) {  // the ring has not wrapped: slot 0 is the first frame
          racy_copy(dst, st.recent.data(), frame_bytes_);
        } else {
          racy_copy(dst, st.recent.data() + ((have - 1 - back) % stack_) * frame_bytes_, frame_bytes_);
        }
      }
      seqlock_acquire_fence();
      if (st.version.load(std::memory_order_relaxed) == version) return;
    }
  }

  // An output's layout is usable: a shared one needs n_step == 1 (with n > 1, next_obs is the
  // state n steps later, not obs shifted by one frame) and exactly that layout. Throws otherwise.
  void check_out(const TransitionOut& o) const {
    if (!o.shared) return;
    const uint64_t fb = frame_bytes_;
    if (n_step_ > 1)
      throw std::invalid_argument("a shared-frames batch needs n_step == 1 (next_obs is obs shifted by one frame); "
                                  "this buffer has n_step " + std::to_string(n_step_));
    if (o.obs + fb != o.next_obs || (o.row_stride != 0 && o.row_stride != (uint64_t(stack_) + 1) * fb))
      throw std::invalid_argument("a shared-frames batch needs next_obs == obs + frame_bytes and rows of "
                                  "(stack + 1) * frame_bytes");
  }

  // Uniform with replacement over sampleable transitions. Throws if there are none.
  // shift_pad > 0 (with the frames' geometry): every state shifted by up to that many pixels as it
  // is copied out (augment.hpp); the transitions drawn are the same as without.
  void sample(size_t batch, const TransitionOut& out, uint32_t shift_pad = 0, const ShiftGeometry* geometry = nullptr) {
    check_out(out);
    if (size() == 0) throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
    const uint64_t call = calls_.fetch_add(1, std::memory_order_acq_rel);
    CallRng rng(seed_, call);
    ShiftStream shifts(seed_, call, shift_pad, out.shared);
    uint64_t head = head_.load(std::memory_order_acquire);
    uint64_t lo = head > capacity_ ? head - capacity_ : 0;
    // Pick all rows first (metadata only), then copy with the next row's frames prefetched:
    // the copies are bound by memory latency, one random 7 KB frame at a time.
    const size_t hl = stack_ + 1;
    std::vector<uint64_t> picks(batch), hists(batch * hl);  // hists: as read under each pick's seqlock
    for (size_t b = 0; b < batch; ++b) picks[b] = draw(rng, lo, head, &hists[b * hl]);
    for (size_t b = 0; b < batch; ++b) {
      if (b + 2 < batch) prefetch_frames(&hists[(b + 2) * hl]);
      const TransitionOut o = shifted(offset(out, b), shifts, shift_pad ? geometry : nullptr);
      // A row torn by a concurrent overwrite is drawn again (never happens single-threaded).
      while (!read_transition(picks[b], o)) picks[b] = draw(rng, lo, head, &hists[b * hl]);
    }
  }

  // The same draws as sample(), returned as frame-slot indices instead of copies: for each row,
  // obs_slots / next_slots (stack each, oldest first) give slot = seq % capacity of every frame, or
  // -1 for zero padding (with pad_first, padding is the slot of the episode's first frame). For
  // gathering on another device from a mirror of the frame store.
  void sample_slots(size_t batch, int64_t* obs_slots, int64_t* next_slots, const TransitionOut& meta_out) {
    if (size() == 0) throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
    CallRng rng(seed_, calls_.fetch_add(1, std::memory_order_acq_rel));
    uint64_t head = head_.load(std::memory_order_acquire);
    uint64_t lo = head > capacity_ ? head - capacity_ : 0;
    uint64_t hist[kMaxStack + 1];
    for (size_t b = 0; b < batch; ++b) {
      Meta m;
      uint64_t t;
      Window w;
      for (;;) {  // re-read the metadata with the draw (a concurrent overwrite: draw again)
        t = draw(rng, lo, head, hist);
        w = Window{};
        if (read_meta(t, m, hist) && window(t, m, hist, w)) break;
      }
      auto slot_of = [&](uint64_t seq, const uint64_t* h) -> int64_t {
        if (seq == kNone) return pad_first_ ? int64_t(oldest_of(h, stack_) % capacity_) : -1;
        return int64_t(seq % capacity_);
      };
      for (uint32_t k = 0; k < stack_; ++k) {
        obs_slots[b * stack_ + k] = slot_of(hist[stack_ - k], hist);
        next_slots[b * stack_ + k] = slot_of(w.last_hist[stack_ - 1 - k], w.last_hist);
      }
      meta_out.action[b] = m.action;
      meta_out.reward[b] = float(w.ret);
      meta_out.terminated[b] = (w.last_meta.flags & kTerminated) != 0;
      meta_out.truncated[b] = (w.last_meta.flags & kTruncated) != 0;
      meta_out.index[b] = int64_t(t);
      meta_out.discount[b] = float(w.discount);
    }
  }

  // Sequences for recurrent Q-networks: each ends at a uniformly drawn sampleable transition whose
  // whole sequence is still stored, and never crosses an episode start or an env stream. Steps
  // before the episode's start have mask false, frames zero (the first frame with pad_first), and
  // zero action/reward/flags.
  void sample_sequences(size_t batch, uint32_t length, const SequenceOut& out) {
    if (size() == 0) throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
    CallRng rng(seed_, calls_.fetch_add(1, std::memory_order_acq_rel));
    uint64_t head = head_.load(std::memory_order_acquire);
    uint64_t lo = head > capacity_ ? head - capacity_ : 0;
    std::vector<uint64_t> seqs(length + 1);
    std::vector<Meta> metas(length + 1);
    uint64_t hist[kMaxStack + 1];
    const size_t fb = frame_bytes_;
    for (size_t b = 0; b < batch; ++b) {
      auto whole = [&](uint64_t t) { return is_valid(t, hist) && sequence_frames(t, length, seqs.data(), metas.data()); };
      for (;;) {
        const uint64_t t = draw_where(rng, lo, head, whole,
                                      "cannot sample sequences: no transition has its whole sequence stored yet "
                                      "(use a shorter length or a larger capacity)");
        if (!sequence_frames(t, length, seqs.data(), metas.data())) continue;  // overwritten since: draw again
        uint64_t first = t;  // the episode's first frame within the sequence (pad_first)
        for (uint32_t j = 0; j <= length && seqs[j] != kNone; ++j) first = seqs[j];
        bool torn = false;
        uint8_t* frames = out.frames + b * (length + 1) * fb;
        for (uint32_t q = 0; q <= length && !torn; ++q) {  // q: oldest first
          const uint64_t seq = seqs[length - q];
          torn = !copy_state_frame(seq, first, frames + q * fb);
        }
        if (torn) continue;
        for (uint32_t p = 0; p < length; ++p) {  // step p produced frame p + 1 from frame p
          const size_t i = b * length + p;
          const bool real = seqs[length - p] != kNone;
          const Meta& m = metas[length - 1 - p];
          out.mask[i] = real;
          out.action[i] = real ? m.action : 0;
          out.reward[i] = real ? m.reward : 0.f;
          out.terminated[i] = real && (m.flags & kTerminated);
          out.truncated[i] = real && (m.flags & kTruncated);
        }
        out.index[b] = int64_t(t);
        break;
      }
    }
  }

  // The transitions with the given indices (as returned in sample()'s index); IndexError if one is
  // not sampleable.
  void gather(size_t n, const int64_t* idx, const TransitionOut& out) const {
    check_out(out);
    for (size_t b = 0; b < n; ++b)
      if (idx[b] < 0 || !read_transition(uint64_t(idx[b]), offset(out, b)))
        throw std::out_of_range("index " + std::to_string(idx[b]) + " is not a sampleable transition");
  }

  std::vector<uint64_t> valid_indices() const {
    const uint64_t head = head_.load(std::memory_order_acquire);
    return valid_in_window(head > capacity_ ? head - capacity_ : 0, head);
  }

  // ---- snapshots ---------------------------------------------------------------------------------
  // A snapshot holds everything needed to continue exactly: frames, per-slot metadata, the cursor,
  // per-stream episode state and the sampling counter. Layout (little-endian):
  //   "DQNFRPLY" | u32 version | u32 n_words | n_words u64 header words | u64 XXH64 of all before |
  //   sections | u64 XXH64 of all before | "DQNFEND!"
  // The header has its own checksum so a corrupt one is refused before anything is allocated. Take a snapshot when no thread is adding.
  static constexpr uint32_t kFormatVersion = 1;

  struct Snapshot {  // the header words
    uint64_t capacity, frame_bytes, stack, num_envs, seed, pad_first, writes, valid, calls, meta_bytes, n_step,
        gamma_bits, kind, alpha_bits, extra_bytes;
    std::vector<uint64_t> dims;  // the caller's frame shape
    uint64_t used() const { return writes < capacity ? writes : capacity; }
    double gamma() const {
      double g;
      std::memcpy(&g, &gamma_bits, 8);
      return g;
    }
    uint64_t body_bytes() const {  // sections after the header
      const uint64_t u = used();
      return u * (frame_bytes + 24 + meta_bytes + (stack + 1) * 8) +
             num_envs * (25 + (stack + 1) * 8 + stack * frame_bytes + n_step * 8) + extra_bytes;
    }
    double alpha() const {
      double a;
      std::memcpy(&a, &alpha_bits, 8);
      return a;
    }
  };
  static constexpr uint32_t kHeaderWords = 16;  // the fixed words, ndim included

  void save(const std::string& path, const std::vector<uint64_t>& dims, bool durable = true) const {
    uint64_t gamma_bits;
    std::memcpy(&gamma_bits, &gamma_, 8);
    const double alpha = snapshot_alpha();
    uint64_t alpha_bits;
    std::memcpy(&alpha_bits, &alpha, 8);
    const Snapshot h{capacity_,      frame_bytes_, stack_,     num_envs_,       seed_,      pad_first_,
                     writes(),       uint64_t(valid_.load()), sample_calls(), sizeof(Meta), n_step_, gamma_bits,
                     snapshot_kind(), alpha_bits, extra_bytes(), dims};
    io::AtomicWriter w(path);
    w.write(kMagic, 8);
    w.put<uint32_t>(kFormatVersion);
    w.put<uint32_t>(uint32_t(kHeaderWords + dims.size()));
    for (uint64_t v : {h.capacity, h.frame_bytes, h.stack, h.num_envs, h.seed, h.pad_first, h.writes, h.valid, h.calls,
                       h.meta_bytes, h.n_step, h.gamma_bits, h.kind, h.alpha_bits, h.extra_bytes, uint64_t(dims.size())})
      w.put<uint64_t>(v);
    for (uint64_t d : dims) w.put<uint64_t>(d);
    const uint64_t header_digest = w.digest();  // lets load() trust the header before allocating
    w.put<uint64_t>(header_digest);
    const uint64_t u = h.used();
    w.write(frames_->get(), u * frame_bytes_);
    w.write(pub_.get(), u * 8);
    w.write(expire_.get(), u * 8);
    w.write(next_.get(), u * 8);
    w.write(meta_.get(), u * sizeof(Meta));
    w.write(hist_.get(), u * (stack_ + 1) * 8);
    for (uint32_t e = 0; e < num_envs_; ++e) {
      const Stream& st = streams_[e];
      w.put<uint8_t>(st.active.load());
      w.put<uint64_t>(st.frames_in_episode.load());
      w.write(st.hist.data(), (stack_ + 1) * 8);
      w.write(st.recent.data(), stack_ * frame_bytes_);
      w.put<uint64_t>(st.steps_in_episode);
      w.put<uint64_t>(st.n_pending.load());
      w.write(st.pending.get(), n_step_ * 8);
    }
    write_extra(w);
    const uint64_t digest = w.digest();
    w.write(&digest, 8);
    w.write(kEnd, 8);
    w.commit(durable);
  }

  // Reads and checks a snapshot's header and size: a foreign, future-version, truncated or padded
  // file is refused here with std::invalid_argument, before anything is allocated.
  static Snapshot read_snapshot_header(const std::string& path) {
    io::HashingReader r(path);
    return read_header(r);
  }

  // Restores a snapshot into this store, which must have been built with the snapshot's settings
  // (see read_snapshot_header). The checksum is verified as the data streams in.
  void load(const std::string& path) {
    io::HashingReader r(path);
    const Snapshot h = read_header(r);
    if (h.capacity != capacity_ || h.frame_bytes != frame_bytes_ || h.stack != stack_ || h.num_envs != num_envs_ ||
        h.seed != seed_ || h.pad_first != uint64_t(pad_first_) || h.n_step != n_step_ || h.gamma() != gamma_ ||
        h.kind != snapshot_kind() || h.extra_bytes != extra_bytes() || h.alpha() != snapshot_alpha())
      throw std::invalid_argument("'" + path + "' holds a buffer with other settings than this one");
    const uint64_t u = h.used();
    r.read(frames_->get(), u * frame_bytes_);
    r.read(pub_.get(), u * 8);
    r.read(expire_.get(), u * 8);
    r.read(next_.get(), u * 8);
    // Files from before owner marks kept 0 in the link word of a frame with no link yet.
    for (uint64_t i = 0; i < u; ++i) {
      const uint64_t p = pub_[i].load(std::memory_order_relaxed);
      if (next_[i].load(std::memory_order_relaxed) == 0 && p != 0) next_[i].store(owner(p - 1), std::memory_order_relaxed);
    }
    r.read(meta_.get(), u * sizeof(Meta));
    r.read(hist_.get(), u * (stack_ + 1) * 8);
    for (uint32_t e = 0; e < num_envs_; ++e) {
      Stream& st = streams_[e];
      st.active.store(r.get<uint8_t>() != 0);
      st.frames_in_episode.store(r.get<uint64_t>());
      r.read(st.hist.data(), (stack_ + 1) * 8);
      r.read(st.recent.data(), stack_ * frame_bytes_);
      st.steps_in_episode = r.get<uint64_t>();
      st.n_pending.store(r.get<uint64_t>());
      r.read(st.pending.get(), n_step_ * 8);
    }
    read_extra(r);
    const uint64_t digest = r.digest();
    uint64_t stored;
    char end[8];
    r.read(&stored, 8, false);
    r.read(end, 8, false);
    if (stored != digest || std::memcmp(end, kEnd, 8) != 0)
      throw std::invalid_argument("'" + path + "' is corrupt (checksum mismatch)");
    head_.store(h.writes);
    valid_.store(int64_t(h.valid));  // (a signed count, stored as its two's complement)
    calls_.store(h.calls);
  }

  // The frame slots, (capacity, frame_bytes) row-major: for zero-copy read-only views.
  const uint8_t* frames_data() const { return frames_->get(); }

  // Baseline for benchmarks: memcpy the frames of these transitions (one-step, as stored) with no
  // checks at all, into out.obs / out.next_obs in out's layout (shared: each frame once).
  void memcpy_baseline(size_t n, const int64_t* idx, const TransitionOut& out) const {
    const size_t fb = frame_bytes_;
    for (size_t b = 0; b < n; ++b) {
      const TransitionOut o = offset(out, b);
      const uint64_t* h = hist_.get() + (uint64_t(idx[b]) % capacity_) * (stack_ + 1);
      for (uint32_t j = 0; j <= stack_; ++j) {
        const uint8_t* src = frames_->get() + (h[j] == kNone ? 0 : (h[j] % capacity_) * fb);
        if (j >= 1) std::memcpy(o.obs + size_t(stack_ - j) * fb, src, fb);
        if (j < stack_ && (!out.shared || j == 0)) std::memcpy(o.next_obs + size_t(stack_ - 1 - j) * fb, src, fb);
      }
    }
  }

 protected:
  // Hooks for subclasses (PrioritizedStore): a slot is being written with seq (a step, or an
  // episode's first frame), called just before the slot is published; no other writer can take the
  // slot until then (write_slot's wait). And the snapshot's extra section.
  virtual void on_write(uint64_t /*slot*/, uint64_t /*seq*/, bool /*transition*/) {}
  virtual uint64_t snapshot_kind() const { return 0; }
  virtual double snapshot_alpha() const { return 0.0; }
  virtual uint64_t extra_bytes() const { return 0; }
  virtual void write_extra(io::AtomicWriter& /*w*/) const {}
  virtual void read_extra(io::HashingReader& /*r*/) {}

  struct Meta {  // the step's data; protected by the slot's seqlock word
    int64_t action;
    float reward;
    uint32_t env;
    uint8_t flags;
  };
  struct alignas(64) Stream {  // writer-owned per-stream state; cache-line aligned against false sharing
    // Odd while a writer is inside a call for this stream: a second writer is refused, and readers
    // of `active`, `frames_in_episode` and `recent` (episode_active, stacked) use it as a seqlock.
    std::atomic<uint64_t> version{0};
    std::atomic<bool> active{false};
    std::vector<uint64_t> hist;    // hist of the stream's latest frame (stack + 1 entries)
    std::vector<uint8_t> recent;   // the episode's last `stack` frames, frame i at (i % stack)
    std::atomic<uint64_t> frames_in_episode{0};
    // The episode's transitions still waiting for their n-step future (at most n_step - 1; entry i
    // is step i mod (n_step - 1)). Atomic so that size() may read them from any thread.
    std::unique_ptr<std::atomic<uint64_t>[]> pending;
    std::atomic<uint64_t> n_pending{0};
    uint64_t steps_in_episode = 0;
    // frames_in_episode is stored with release (and stacked() loads it with acquire): a reader that
    // sees a value written inside a call then sees the call's odd version when it checks again,
    // also under -DDQNFAST_TSAN, where the seqlock's fences are not used.
    void remember(const uint8_t* frame, uint64_t frame_bytes, uint32_t stack) {
      const uint64_t have = frames_in_episode.load(std::memory_order_relaxed);
      racy_copy(recent.data() + (have % stack) * frame_bytes, frame, frame_bytes);
      frames_in_episode.store(have + 1, std::memory_order_release);
    }
  };

  static constexpr char kMagic[8] = {'D', 'Q', 'N', 'F', 'R', 'P', 'L', 'Y'};
  static constexpr char kEnd[8] = {'D', 'Q', 'N', 'F', 'E', 'N', 'D', '!'};

  static Snapshot read_header(io::HashingReader& r) {
    const std::string& path = r.path();
    char magic[8];
    if (r.size() < 16) throw std::invalid_argument("'" + path + "' is not a dqnfast replay buffer file (too short)");
    r.read(magic, 8);
    if (std::memcmp(magic, kMagic, 8) != 0)
      throw std::invalid_argument("'" + path + "' is not a dqnfast replay buffer file (bad magic)");
    const uint32_t version = r.get<uint32_t>();
    if (version > kFormatVersion)
      throw std::invalid_argument("'" + path + "' was written by a newer dqnfast (format version " +
                                  std::to_string(version) + "; this one reads up to " + std::to_string(kFormatVersion) + ")");
    if (version == 0) throw std::invalid_argument("'" + path + "' is corrupt (format version 0)");
    const uint32_t n_words = r.get<uint32_t>();
    if (n_words < kHeaderWords || n_words > kHeaderWords + 64 || r.size() < 16 + uint64_t(n_words) * 8)
      throw std::invalid_argument("'" + path + "' is corrupt or truncated (bad header)");
    Snapshot h;
    uint64_t* fields[] = {&h.capacity, &h.frame_bytes, &h.stack,  &h.num_envs,   &h.seed,      &h.pad_first,
                          &h.writes,   &h.valid,       &h.calls,  &h.meta_bytes, &h.n_step,    &h.gamma_bits,
                          &h.kind,     &h.alpha_bits,  &h.extra_bytes};
    for (uint64_t* f : fields) *f = r.get<uint64_t>();
    const uint64_t ndim = r.get<uint64_t>();
    if (ndim != n_words - kHeaderWords) throw std::invalid_argument("'" + path + "' is corrupt (bad header)");
    for (uint64_t i = 0; i < ndim; ++i) h.dims.push_back(r.get<uint64_t>());
    const uint64_t header_digest = r.digest();
    if (r.get<uint64_t>() != header_digest) throw std::invalid_argument("'" + path + "' is corrupt (header checksum mismatch)");
    uint64_t dim_bytes = 1;
    for (uint64_t d : h.dims) dim_bytes *= d;
    if (h.capacity == 0 || h.frame_bytes == 0 || dim_bytes != h.frame_bytes || h.stack == 0 || h.stack > kMaxStack ||
        h.num_envs == 0 || h.capacity < h.num_envs * (h.stack + 1) || h.pad_first > 1 || h.meta_bytes != sizeof(Meta) ||
        h.capacity > (uint64_t(1) << 40) || h.frame_bytes > (uint64_t(1) << 40) || h.n_step == 0 ||
        h.n_step > kMaxNStep || !(h.gamma() >= 0.0 && h.gamma() <= 1.0) || h.kind > 1 ||
        h.extra_bytes > (uint64_t(1) << 44))
      throw std::invalid_argument("'" + path + "' is corrupt (inconsistent header) or from another platform");
    const uint64_t expect = r.position() + h.body_bytes() + 16;
    if (r.size() < expect)
      throw std::invalid_argument("'" + path + "' is truncated (" + std::to_string(r.size()) + " bytes, expected " +
                                  std::to_string(expect) + ")");
    if (r.size() > expect)
      throw std::invalid_argument("'" + path + "' is corrupt (" + std::to_string(r.size() - expect) + " extra bytes)");
    return h;
  }

  static uint64_t tag(uint64_t seq) { return (seq + 1) << 16; }

  // Forward links for n-step windows. next_[slot of frame s] = link(s, d): the same stream's next
  // step was written at s + d, or d = 0: the episode was abandoned after s (a new start_episode
  // without a terminal step). The low 32 bits of s tag the entry with its owner, and a reader also
  // checks that the successor's previous frame is s, so a stale link is never followed.
  static constexpr uint64_t kLinkSet = uint64_t(1) << 63;
  static constexpr uint64_t kMaxLinkDelta = uint64_t(1) << 31;
  static uint64_t link(uint64_t s, uint64_t delta) { return kLinkSet | (delta << 32) | (s & 0xFFFFFFFFULL); }
  // Before its link is known, frame s's link word holds owner(s): unique to s (all of s, and
  // kLinkSet clear), so only the writer of s's own stream can replace it, and only while s is there.
  static uint64_t owner(uint64_t s) { return s + 1; }
  // Installs frame prev's link; fails (harmlessly) if prev's slot has been reused since.
  void install_link(uint64_t prev, uint64_t delta) {
    DQNFAST_HOOK(before_link, prev);
    uint64_t expected = owner(prev);
    next_[prev % capacity_].compare_exchange_strong(expected, link(prev, delta), std::memory_order_acq_rel,
                                                    std::memory_order_relaxed);
    DQNFAST_HOOK(after_link, prev);
  }

  // The episode's waiting transitions leave the pending list before the link that completes their
  // windows (see size()).
  void end_abandoned_episode(Stream& st) {
    if (n_step_ > 1 && st.active.load(std::memory_order_relaxed)) {
      st.n_pending.store(0, std::memory_order_release);
      install_link(st.hist[0], 0);
    }
  }

  // Claims the writer side of `n` streams for one call (released when it returns), and checks that
  // each may be written: throws std::logic_error if another thread is inside a call for one of them,
  // and (adds) std::invalid_argument if one has no episode in progress. Nothing is written then.
  class StreamGuard {
   public:
    StreamGuard(FrameStore& store, size_t n, const uint32_t* envs, bool adding) : store_(store), envs_(envs) {
      for (; claimed_ < n; ++claimed_) {
        Stream& st = store.streams_[envs[claimed_]];
        uint64_t v = st.version.load(std::memory_order_relaxed);
        if ((v & 1) || !st.version.compare_exchange_strong(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed)) {
          release();
          throw std::logic_error("env " + std::to_string(envs[claimed_]) +
                                 " is being written by another thread: feed each env stream from one thread at a time");
        }
      }
      seqlock_release_fence();  // the odd versions before any change to the streams' state
      if (adding) {
        try {
          for (size_t i = 0; i < n; ++i) store.check_can_add(envs[i]);
        } catch (...) {
          release();
          throw;
        }
      }
    }
    ~StreamGuard() { release(); }
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;

   private:
    void release() {
      for (size_t i = 0; i < claimed_; ++i) store_.streams_[envs_[i]].version.fetch_add(1, std::memory_order_release);
      claimed_ = 0;
    }
    FrameStore& store_;
    const uint32_t* envs_;
    size_t claimed_ = 0;
  };

  uint64_t row_stride(const TransitionOut& o) const {
    if (o.row_stride) return o.row_stride;
    return (uint64_t(stack_) + (o.shared ? 1 : 0)) * frame_bytes_;
  }
  TransitionOut offset(const TransitionOut& o, size_t b) const {
    const size_t sb = row_stride(o);
    return {o.obs + b * sb,   o.next_obs + b * sb, o.action + b, o.reward + b,
            o.terminated + b, o.truncated + b,     o.index + b,  o.discount + b,
            o.row_stride,     o.shared};
  }
  // Row o with the next offsets of `shifts` (a geometry of null: no shift, no draw).
  static TransitionOut shifted(TransitionOut o, ShiftStream& shifts, const ShiftGeometry* geometry) {
    if (geometry != nullptr) {
      o.shift_geometry = geometry;
      o.offsets = shifts.next();
    }
    return o;
  }

  void begin_episode_in(Stream& st, uint32_t env, uint64_t seq, const uint8_t* frame) const {
    std::fill(st.hist.begin(), st.hist.end(), kNone);
    st.hist[0] = seq;
    st.active.store(true, std::memory_order_release);
    st.frames_in_episode.store(0, std::memory_order_release);
    st.steps_in_episode = 0;
    st.n_pending.store(0, std::memory_order_release);
    DQNFAST_HOOK(episode_reset, env);
    st.remember(frame, frame_bytes_, stack_);
  }

  // The order of the steps below is what lets size() never count fewer than the transitions that
  // stay sampleable during its call (see there): count, then list as pending, then publish, then link.
  void add_at(uint64_t seq, uint32_t env, const StepRecord& step, const uint8_t* frame) {
    Stream& st = streams_[env];
    std::copy_backward(st.hist.begin(), st.hist.end() - 1, st.hist.end());
    st.hist[0] = seq;
    st.remember(frame, frame_bytes_, stack_);
    // The transition stays sampleable until the oldest frame of its obs is overwritten: count it in
    // that frame's slot. valid_ goes up before the slot's count and comes back down if the frame is
    // gone already, so valid_ may be one too high for a moment, never one too low.
    const uint64_t oldest = oldest_of(st.hist.data(), stack_);
    valid_.fetch_add(1, std::memory_order_acq_rel);
    std::atomic<uint64_t>& ex = expire_[oldest % capacity_];
    uint64_t cur = ex.load(std::memory_order_acquire);
    bool counted = false;
    while (!counted && (cur & ~0xFFFFULL) == tag(oldest))
      counted = ex.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel);
    if (!counted) valid_.fetch_sub(1, std::memory_order_acq_rel);
    DQNFAST_HOOK(after_count, seq);
    const bool ends = step.terminated || step.truncated;
    // Pending list: a step whose window the next n - 1 steps complete enters it; the entry it
    // replaces (the step n - 1 back) leaves it here, before the link below completes its window.
    if (n_step_ > 1) {
      if (ends) {
        st.n_pending.store(0, std::memory_order_release);  // the whole episode's future is known now
      } else {
        st.pending[st.steps_in_episode % (n_step_ - 1)].store(seq, std::memory_order_release);
        const uint64_t np = st.n_pending.load(std::memory_order_relaxed);
        if (np < n_step_ - 1) st.n_pending.store(np + 1, std::memory_order_release);
      }
    }
    const uint8_t flags = (step.terminated ? kTerminated : 0) | (step.truncated ? kTruncated : 0);
    write_slot(seq, env, frame, step, flags, st.hist.data());
    // Link the previous frame to this step so n-step windows can walk forward (see link()).
    if (n_step_ > 1) {
      const uint64_t prev = st.hist[1];
      if (seq - prev < kMaxLinkDelta) install_link(prev, seq - prev);
    }
    ++st.steps_in_episode;
    if (ends) st.active.store(false, std::memory_order_release);
  }

  void write_slot(uint64_t seq, uint32_t env, const uint8_t* frame, const StepRecord& step, uint8_t flags,
                  const uint64_t* hist) {
    const uint64_t slot = seq % capacity_;
    std::atomic<uint64_t>& pub = pub_[slot];
    if (seq >= capacity_) {
      // The previous occupant (seq - capacity) may still be being written by a slow thread: wait for
      // it, so two writers never share a slot. Only possible when a writer stalls for `capacity` writes.
      const uint64_t prev = seq - capacity_ + 1;
      while (pub.load(std::memory_order_acquire) != prev) std::this_thread::yield();
    }
    // Retire the previous occupant: transitions whose oldest frame lived here stop being sampleable.
    // Unpublished first, uncounted second (the release of the fetch_sub orders the two): size()
    // relies on a transition whose frames are still stored being still counted.
    pub.store(0, std::memory_order_relaxed);
    const uint64_t old = expire_[slot].exchange(tag(seq), std::memory_order_acq_rel);
    if (seq >= capacity_ && (old & ~0xFFFFULL) == tag(seq - capacity_))
      valid_.fetch_sub(int64_t(old & 0xFFFF), std::memory_order_acq_rel);
    DQNFAST_HOOK(after_retire, seq);
    next_[slot].store(owner(seq), std::memory_order_relaxed);  // see install_link
    seqlock_release_fence();
    racy_copy(frames_->get() + slot * frame_bytes_, frame, frame_bytes_);
    Meta m;
    std::memset(&m, 0, sizeof m);  // padding bytes too: snapshots of equal stores are equal files
    m.action = step.action;
    m.reward = step.reward;
    m.env = env;
    m.flags = flags;
    racy_copy(&meta_[slot], &m, sizeof(Meta));
    racy_copy(hist_.get() + slot * (stack_ + 1), hist, (stack_ + 1) * sizeof(uint64_t));
    on_write(slot, seq, (flags & kFirst) == 0);  // while the slot is still this write's alone
    pub.store(seq + 1, std::memory_order_release);
    DQNFAST_HOOK(after_publish, seq);
  }

  // Copies frame `seq` into dst; false if it is not (or no longer) the frame in its slot.
  // With a geometry, the frame is copied shifted by (dy, dx) (augment.hpp).
  bool copy_frame(uint64_t seq, uint8_t* dst, const ShiftGeometry* g = nullptr, int64_t dy = 0, int64_t dx = 0) const {
    const std::atomic<uint64_t>& pub = pub_[seq % capacity_];
    if (pub.load(std::memory_order_acquire) != seq + 1) return false;
    const uint8_t* src = frames_->get() + (seq % capacity_) * frame_bytes_;
    if (g == nullptr || (dy == 0 && dx == 0)) {
      racy_copy(dst, src, frame_bytes_);
    } else {
      shifted_copy(dst, src, *g, dy, dx, racy_copy);
    }
    seqlock_acquire_fence();
    return pub.load(std::memory_order_relaxed) == seq + 1;
  }

  // One uniform draw among the sampleable transitions of the window [lo, head); its hist goes to `hist`.
  // Rejection sampling; if that keeps failing, a scan of the window. Either fails when almost
  // nothing is sampleable (one-step episodes) or when concurrent writers moved the window on during
  // this call, so the scan first refreshes the window. Single-threaded, the window never moves and
  // the draws are those of python/dqnfast/replay_reference.py.
  uint64_t draw(CallRng& rng, uint64_t& lo, uint64_t& head, uint64_t* hist) const {
    return draw_where(rng, lo, head, [&](uint64_t t) { return is_valid(t, hist); });
  }

  static constexpr int kMaxRounds = 64;  // rounds of draws and a scan before giving up on writers

  // The same for transitions satisfying `ok` (which implies is_valid); `none` is the error when
  // none does although some transition is sampleable (nullptr: sample's own "no sampleable
  // transition" error).
  //
  // A scan checks every transition of the window, so a transition that satisfies `ok` from the
  // start of the scan until it is picked is always found and returned: the scan's picks drop the
  // ones overwritten since (the first pick is the reference's draw). An empty scan is therefore
  // only an error if nothing was written meanwhile: when the cursor moved during the scan, writers
  // are refilling the window, and another round (draws, then a scan) follows, at most kMaxRounds.
  template <typename Pred>
  uint64_t draw_where(CallRng& rng, uint64_t& lo, uint64_t& head, Pred ok, const char* none = nullptr) const {
    for (int round = 0; round < kMaxRounds; ++round) {
      for (int attempt = 0; attempt < kMaxRejectsPerDraw; ++attempt) {
        const uint64_t t = lo + rng.below(head - lo);
        if (ok(t)) return t;
      }
      head = head_.load(std::memory_order_acquire);
      lo = head > capacity_ ? head - capacity_ : 0;
      DQNFAST_HOOK(before_scan, head);
      std::vector<uint64_t> valid = scan_window(lo, head, ok);
      while (!valid.empty()) {
        const size_t k = size_t(rng.below(valid.size()));
        if (ok(valid[k])) return valid[k];
        valid[k] = valid.back();  // overwritten since the scan: pick among the others
        valid.pop_back();
      }
      if (head_.load(std::memory_order_acquire) == head) {  // nothing written during the scan: exact
        if (none == nullptr || valid_in_window(lo, head).empty())
          throw std::invalid_argument("cannot sample: the buffer holds no sampleable transition yet");
        throw std::invalid_argument(none);
      }
      std::this_thread::yield();  // the writers are moving the window: let them, then draw again
    }
    throw std::runtime_error("cannot sample: concurrent writers overwrote every transition drawn");
  }

  void prefetch_frames(const uint64_t* hist) const {
    for (uint32_t j = 0; j <= stack_; ++j) {
      if (hist[j] == kNone) continue;
      const uint8_t* f = frames_->get() + (hist[j] % capacity_) * frame_bytes_;
      for (uint64_t off = 0; off < std::min<uint64_t>(frame_bytes_, 256); off += 64) __builtin_prefetch(f + off, 0, 3);
    }
  }

  bool intact(uint64_t seq) const { return pub_[seq % capacity_].load(std::memory_order_acquire) == seq + 1; }

  // Reads the metadata and hist of frame `seq` under its seqlock; false unless it is stored.
  bool read_slot(uint64_t seq, Meta& m, uint64_t* hist) const {
    const uint64_t slot = seq % capacity_;
    const std::atomic<uint64_t>& pub = pub_[slot];
    if (pub.load(std::memory_order_acquire) != seq + 1) return false;
    racy_copy(&m, &meta_[slot], sizeof(Meta));
    racy_copy(hist, hist_.get() + slot * (stack_ + 1), (stack_ + 1) * sizeof(uint64_t));
    seqlock_acquire_fence();
    return pub.load(std::memory_order_relaxed) == seq + 1;
  }
  // The same for transition t: false unless t is a stored step (not an episode's first frame).
  bool read_meta(uint64_t t, Meta& m, uint64_t* hist) const { return read_slot(t, m, hist) && !(m.flags & kFirst); }

  // The `length` + 1 frames of the sequence ending at transition t, newest first: seqs[0] = t,
  // seqs[j] the frame j steps before, kNone before the episode's start. Also each frame's
  // metadata (the step that produced it). False if one of them is no longer stored.
  bool sequence_frames(uint64_t t, uint32_t length, uint64_t* seqs, Meta* metas) const {
    uint64_t hist[kMaxStack + 1];
    seqs[0] = t;
    for (uint32_t j = 0; j <= length; ++j) {
      if (seqs[j] == kNone) {
        if (j < length) seqs[j + 1] = kNone;
        continue;
      }
      if (!read_slot(seqs[j], metas[j], hist)) return false;
      if (j < length) seqs[j + 1] = hist[1];
    }
    return true;
  }

  static uint64_t oldest_of(const uint64_t* hist, uint32_t stack) {
    uint64_t oldest = hist[1];
    for (uint32_t j = 2; j <= stack && hist[j] != kNone; ++j) oldest = hist[j];
    return oldest;
  }

  // Transition t's own frames are all stored (its n-step future aside).
  bool frames_valid(uint64_t t) const {
    Meta m;
    uint64_t hist[kMaxStack + 1];
    return read_meta(t, m, hist) && intact(oldest_of(hist, stack_));
  }

  struct Window {         // an n-step window starting at transition t
    uint32_t m = 0;       // steps it spans (1..n_step)
    double ret = 0;       // sum_k gamma^k r_k
    double discount = 1;  // gamma^m
    uint64_t last = 0;    // its last transition
    Meta last_meta{};
    uint64_t last_hist[kMaxStack + 1];
  };

  // Walks from transition t (whose meta and hist are given) through the same episode: false while
  // the window's future is not yet written. It stops after n_step steps, at a terminated or
  // truncated step, or where the episode was abandoned.
  bool window(uint64_t t, const Meta& m0, const uint64_t* hist0, Window& w) const {
    uint64_t cur = t;
    Meta m = m0;
    std::memcpy(w.last_hist, hist0, (stack_ + 1) * sizeof(uint64_t));
    for (uint32_t k = 0;; ++k) {
      w.ret += w.discount * double(m.reward);
      w.discount *= gamma_;
      w.m = k + 1;
      w.last = cur;
      w.last_meta = m;
      if ((m.flags & (kTerminated | kTruncated)) || w.m == n_step_) return true;
      const uint64_t e = next_[cur % capacity_].load(std::memory_order_acquire);
      if (!(e & kLinkSet) || (e & 0xFFFFFFFFULL) != (cur & 0xFFFFFFFFULL)) return false;  // future unknown
      const uint64_t delta = (e >> 32) & (kMaxLinkDelta - 1);
      if (delta == 0) return true;  // the episode was abandoned after cur
      const uint64_t u = cur + delta;
      if (!read_meta(u, m, w.last_hist) || w.last_hist[1] != cur) return false;
      cur = u;
    }
  }

  bool is_valid(uint64_t t, uint64_t* hist) const {
    Meta m;
    if (!read_meta(t, m, hist) || !intact(oldest_of(hist, stack_))) return false;
    if (n_step_ == 1) return true;
    Window w;
    return window(t, m, hist, w);
  }
  bool is_valid(uint64_t t) const {
    uint64_t hist[kMaxStack + 1];
    return is_valid(t, hist);
  }

  // The transitions in [lo, head) that satisfy `ok`, in order.
  template <typename Pred>
  std::vector<uint64_t> scan_window(uint64_t lo, uint64_t head, Pred ok) const {
    std::vector<uint64_t> out;
    for (uint64_t t = lo; t < head; ++t)
      if (ok(t)) out.push_back(t);
    return out;
  }
  std::vector<uint64_t> valid_in_window(uint64_t lo, uint64_t head) const {
    return scan_window(lo, head, [this](uint64_t t) { return is_valid(t); });
  }

  // Copies transition t into o; false (o partly written) if t is not sampleable or was torn.
  // Every frame and every slot's metadata is checked against its seqlock right after it is read, so
  // whatever is returned is exactly what was written, even if a slot is recycled a moment later.
  bool read_transition(uint64_t t, const TransitionOut& o) const {
    Meta m;
    uint64_t hist[kMaxStack + 1];
    if (!read_meta(t, m, hist) || !intact(oldest_of(hist, stack_))) return false;
    if (n_step_ > 1) return read_n_step(t, m, hist, o);
    const size_t fb = frame_bytes_;
    const ShiftGeometry* g = o.shift_geometry;
    const ShiftOffsets& s = o.offsets;  // (all 0 without a shift; equal for obs and next_obs when shared)
    // hist[j] is the frame j steps before t's next frame: obs[k] = hist[stack - k], next[k] = hist[stack - 1 - k].
    for (uint32_t j = stack_; j >= 1; --j) {
      uint8_t* dst = o.obs + size_t(stack_ - j) * fb;
      const bool zero = hist[j] == kNone && !pad_first_;
      const uint64_t seq = hist[j] == kNone ? oldest_of(hist, stack_) : hist[j];
      if (zero) {
        std::memset(dst, 0, fb);
      } else if (!copy_frame(seq, dst, g, s.dy, s.dx)) {
        return false;  // (with pad_first, padding is the episode's first frame: the oldest in hist)
      }
      // Shared layout: next_obs[stack - 1 - j] is this very frame (next_obs == obs + fb), already written.
      if (j < stack_ && !o.shared) {
        uint8_t* next = o.next_obs + size_t(stack_ - 1 - j) * fb;
        if (zero || s.same()) {
          std::memcpy(next, dst, fb);
        } else if (!copy_frame(seq, next, g, s.ndy, s.ndx)) {  // next_obs has its own offset: from the store
          return false;
        }
      }
    }
    // Each copy_frame checked its slot's seqlock after copying, so every frame in the row is
    // exactly the one written under that sequence number, even if its slot is recycled now.
    // (Shared layout: next_obs + (stack - 1) * fb is obs + stack * fb, the row's last frame.)
    if (!copy_frame(hist[0], o.next_obs + size_t(stack_ - 1) * fb, g, s.ndy, s.ndx)) return false;
    *o.action = m.action;
    *o.reward = m.reward;
    *o.terminated = (m.flags & kTerminated) != 0;
    *o.truncated = (m.flags & kTruncated) != 0;
    *o.index = int64_t(t);
    *o.discount = float(gamma_);
    return true;
  }

  // Copies one frame of a state: a stored frame, or padding (zeros, or the episode's first frame).
  bool copy_state_frame(uint64_t seq, uint64_t first, uint8_t* dst, const ShiftGeometry* g = nullptr, int64_t dy = 0,
                        int64_t dx = 0) const {
    if (seq == kNone && !pad_first_) {
      std::memset(dst, 0, frame_bytes_);
      return true;
    }
    return copy_frame(seq == kNone ? first : seq, dst, g, dy, dx);
  }

  // n-step: obs is t's, next_obs the state after the window's last step, reward the discounted sum.
  // Never with a shared output (check_out refuses it): next_obs would overwrite obs.
  bool read_n_step(uint64_t t, const Meta& m0, const uint64_t* hist, const TransitionOut& o) const {
    Window w;
    if (!window(t, m0, hist, w)) return false;
    const size_t fb = frame_bytes_;
    const uint64_t first = oldest_of(hist, stack_), last_first = oldest_of(w.last_hist, stack_);
    const ShiftGeometry* g = o.shift_geometry;
    const ShiftOffsets& s = o.offsets;
    for (uint32_t k = 0; k < stack_; ++k)
      if (!copy_state_frame(hist[stack_ - k], first, o.obs + size_t(k) * fb, g, s.dy, s.dx)) return false;
    for (uint32_t k = 0; k < stack_; ++k) {
      const uint64_t seq = w.last_hist[stack_ - 1 - k];
      uint8_t* dst = o.next_obs + size_t(k) * fb;
      uint32_t j = 1;  // a frame obs already holds (shifted alike) is copied from there (cache), not the store
      while (s.same() && j <= stack_ && (seq == kNone || hist[j] != seq)) ++j;
      if (s.same() && j <= stack_) {
        std::memcpy(dst, o.obs + size_t(stack_ - j) * fb, fb);
      } else if (!copy_state_frame(seq, last_first, dst, g, s.ndy, s.ndx)) {
        return false;
      }
    }
    *o.action = m0.action;
    *o.reward = float(w.ret);
    *o.terminated = (w.last_meta.flags & kTerminated) != 0;
    *o.truncated = (w.last_meta.flags & kTruncated) != 0;
    *o.index = int64_t(t);
    *o.discount = float(w.discount);
    return true;
  }

  const uint64_t capacity_, frame_bytes_;
  const uint32_t stack_, num_envs_;
  const uint64_t seed_;
  const bool pad_first_;
  const uint32_t n_step_;
  const double gamma_;
  std::unique_ptr<FrameMemory> frames_;
  std::unique_ptr<std::atomic<uint64_t>[]> pub_;     // seqlock word per slot: seq + 1, 0 while written
  std::unique_ptr<std::atomic<uint64_t>[]> expire_;  // tag(seq of the frame here) | #transitions it is oldest of
  std::unique_ptr<std::atomic<uint64_t>[]> next_;    // forward link per frame (n-step only): see link()
  std::unique_ptr<Meta[]> meta_;
  std::unique_ptr<uint64_t[]> hist_;
  std::unique_ptr<Stream[]> streams_;
  alignas(64) std::atomic<uint64_t> head_{0};  // next sequence number to hand out
  alignas(64) std::atomic<int64_t> valid_{0};  // sampleable transitions
  alignas(64) std::atomic<uint64_t> calls_{0};  // sample() calls so far (the RNG counter)
};

}  // namespace dqnfast
