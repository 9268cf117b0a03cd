// Known-answer test of the hand-written XXH64 in io.hpp (snapshot checksums).
//
//   g++ -std=c++17 -O2 -Icpp cpp/tests/xxh64_known_answers.cpp -o xxh64_kat && ./xxh64_kat
//
// The short vectors are the published ones (xxHash's documentation and python-xxhash's README);
// the long ones, which cross the 32-byte stripes, were computed with the reference C library
// (python-xxhash 3.x). Every input is also hashed streamed in pieces of every size from 1 to 97
// bytes, which must give the one-shot digest.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dqnfast/io.hpp"

namespace {

struct Vector {
  std::string data;
  uint64_t seed;
  uint64_t digest;
};

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string bytes_0_to_255(int copies) {
  std::string out;
  for (int c = 0; c < copies; ++c)
    for (int i = 0; i < 256; ++i) out.push_back(char(i));
  return out;
}

}  // namespace

int main() {
  const std::string nobody = "Nobody inspects the spammish repetition";
  const std::vector<Vector> vectors = {
      {"", 0, 0xEF46DB3751D8E999ULL},
      {"a", 0, 0xD24EC4F1A98C6E5BULL},
      {"abc", 0, 0x44BC2CF5AD770999ULL},
      {nobody, 0, 0xFBCEA83C8A378BF1ULL},
      {"", 1, 0xD5AFBA1336A3BE4BULL},
      {"abc", 1, 0xBEA9CA8199328908ULL},
      {repeat(nobody, 10), 0, 0x75425EA12FFA53C4ULL},
      {repeat(nobody, 10), 0x9E3779B185EBCA87ULL, 0x90702E8EEC2C93B5ULL},
      {bytes_0_to_255(4), 0, 0x6F3914F18FE4DF57ULL},
  };
  int failures = 0;
  for (const Vector& v : vectors) {
    dqnfast::io::XXH64 one(v.seed);
    one.update(v.data.data(), v.data.size());
    if (one.digest() != v.digest) {
      ++failures;
      std::printf("FAIL: %zu bytes, seed %llu: %016llx, expected %016llx\n", v.data.size(),
                  (unsigned long long)v.seed, (unsigned long long)one.digest(), (unsigned long long)v.digest);
    }
    for (size_t piece = 1; piece <= 97; ++piece) {
      dqnfast::io::XXH64 streamed(v.seed);
      for (size_t at = 0; at < v.data.size(); at += piece)
        streamed.update(v.data.data() + at, std::min(piece, v.data.size() - at));
      if (streamed.digest() != v.digest) {
        ++failures;
        std::printf("FAIL: %zu bytes streamed in pieces of %zu\n", v.data.size(), piece);
        break;
      }
    }
  }
  std::printf("vectors=%zu failures=%d\n", vectors.size(), failures);
  return failures == 0 ? 0 : 1;
}
