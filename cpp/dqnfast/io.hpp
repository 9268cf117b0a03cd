// File I/O for replay snapshots: XXH64 checksums, an atomic file writer (temporary file, fsync,
// rename, fsync of the directory) and a hashing reader. POSIX only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "dqnfast/test_hooks.hpp"

namespace dqnfast {
namespace io {

// Streaming XXH64 (Yann Collet's xxHash, 64-bit): ~10 GB/s, so hashing never limits save/load.
class XXH64 {
 public:
  explicit XXH64(uint64_t seed = 0)
      : v1_(seed + P1 + P2), v2_(seed + P2), v3_(seed), v4_(seed - P1), seed_(seed) {}

  void update(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    total_ += n;
    if (buffered_ + n < 32) {
      std::memcpy(buf_ + buffered_, p, n);
      buffered_ += n;
      return;
    }
    if (buffered_) {
      const size_t take = 32 - buffered_;
      std::memcpy(buf_ + buffered_, p, take);
      consume(buf_);
      p += take;
      n -= take;
      buffered_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) consume(p);
    std::memcpy(buf_, p, n);
    buffered_ = n;
  }

  uint64_t digest() const {
    uint64_t h;
    if (total_ >= 32) {
      h = rotl(v1_, 1) + rotl(v2_, 7) + rotl(v3_, 12) + rotl(v4_, 18);
      h = merge(h, v1_);
      h = merge(h, v2_);
      h = merge(h, v3_);
      h = merge(h, v4_);
    } else {
      h = seed_ + P5;
    }
    h += total_;
    const uint8_t* p = buf_;
    size_t n = buffered_;
    for (; n >= 8; p += 8, n -= 8) {
      h ^= round(0, load64(p));
      h = rotl(h, 27) * P1 + P4;
    }
    if (n >= 4) {
      uint32_t k;
      std::memcpy(&k, p, 4);
      h ^= uint64_t(k) * P1;
      h = rotl(h, 23) * P2 + P3;
      p += 4;
      n -= 4;
    }
    for (; n > 0; ++p, --n) {
      h ^= uint64_t(*p) * P5;
      h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL,
                            P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint64_t round(uint64_t acc, uint64_t input) { return rotl(acc + input * P2, 31) * P1; }
  static uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; }
  void consume(const uint8_t* p) {
    v1_ = round(v1_, load64(p));
    v2_ = round(v2_, load64(p + 8));
    v3_ = round(v3_, load64(p + 16));
    v4_ = round(v4_, load64(p + 24));
  }

  uint64_t v1_, v2_, v3_, v4_, seed_, total_ = 0;
  uint8_t buf_[32] = {};
  size_t buffered_ = 0;
};

// An operating-system error (the bindings raise it as OSError / FileNotFoundError).
class OsError : public std::runtime_error {
 public:
  OsError(const std::string& msg, int err) : std::runtime_error(msg), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

inline OsError os_error(const std::string& what, const std::string& path) {
  const int err = errno;
  return OsError(what + " '" + path + "': " + std::strerror(err), err);
}

// Writes `path` atomically: everything goes to a temporary file beside it, which is fsynced and
// renamed over `path` only when complete, so a crash mid-write never loses the previous file.
//
// The checksum covers exactly the bytes in the file: data is first copied into a staging buffer,
// then hashed and written from there, so each byte of the caller's memory is read once. (Hashing
// the caller's memory and then writing it read it twice; memory that changed in between, such as a
// priority updated by another thread, made a file whose checksum disagreed with its contents.) The
// buffer also turns the many small header writes into one system call.
class AtomicWriter {
 public:
  static constexpr size_t kStage = size_t(1) << 20;

  explicit AtomicWriter(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(getpid())), stage_(new char[kStage]) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw os_error("cannot create", tmp_);
  }
  ~AtomicWriter() {
    if (fd_ >= 0) {  // not committed: an exception is unwinding
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t n) {
    auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const size_t k = n < kStage - staged_ ? n : kStage - staged_;
      char* copy = stage_.get() + staged_;
      std::memcpy(copy, p, k);
      hash_.update(copy, k);
      DQNFAST_HOOK(after_hash, k);
      staged_ += k;
      p += k;
      n -= k;
      if (staged_ == kStage) flush();
    }
  }
  template <typename T>
  void put(T v) {
    write(&v, sizeof v);
  }
  uint64_t digest() const { return hash_.digest(); }

  void commit(bool durable) {
    flush();
    if (durable && ::fsync(fd_) != 0) throw os_error("cannot fsync", tmp_);
    if (::close(fd_) != 0) {
      fd_ = -1;
      ::unlink(tmp_.c_str());
      throw os_error("cannot close", tmp_);
    }
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      ::unlink(tmp_.c_str());
      throw os_error("cannot rename the temporary file to", path_);
    }
    if (durable) {  // make the rename itself durable
      const size_t slash = path_.find_last_of('/');
      const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
      const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
  }

 private:
  void flush() {
    const char* p = stage_.get();
    size_t n = staged_;
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw os_error("cannot write", tmp_);
      }
      p += w;
      n -= size_t(w);
    }
    staged_ = 0;
  }

  std::string path_, tmp_;
  int fd_ = -1;
  XXH64 hash_;
  std::unique_ptr<char[]> stage_;
  size_t staged_ = 0;
};

// Reads a file front to back, hashing what it reads; errors say "truncated" when the file ends early.
class HashingReader {
 public:
  explicit HashingReader(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw os_error("cannot open", path_);
    struct stat st;
    if (::fstat(fd_, &st) != 0) throw os_error("cannot stat", path_);
    size_ = uint64_t(st.st_size);
  }
  ~HashingReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  HashingReader(const HashingReader&) = delete;
  HashingReader& operator=(const HashingReader&) = delete;

  uint64_t size() const { return size_; }
  uint64_t position() const { return pos_; }
  const std::string& path() const { return path_; }

  void read(void* data, size_t n, bool hash = true) {
    auto* p = static_cast<char*>(data);
    size_t left = n;
    while (left > 0) {
      const ssize_t r = ::read(fd_, p, left > (size_t(1) << 30) ? (size_t(1) << 30) : left);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw os_error("cannot read", path_);
      }
      if (r == 0) throw std::invalid_argument("'" + path_ + "' is truncated (ends at byte " + std::to_string(pos_) + ")");
      p += r;
      left -= size_t(r);
      pos_ += uint64_t(r);
    }
    if (hash) hash_.update(data, n);
  }
  template <typename T>
  T get() {
    T v;
    read(&v, sizeof v);
    return v;
  }
  uint64_t digest() const { return hash_.digest(); }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0, pos_ = 0;
  XXH64 hash_;
};

}  // namespace io
}  // namespace dqnfast
