#pragma once
// A hash that is the same in every process and on every machine (absl::Hash is salted per process):
// for choices that separate processes must agree on, such as which worker keeps a binding alive or
// at which phase of its interval.
#include <cstdint>

#include "absl/strings/string_view.h"

namespace latchkey {

// 64-bit FNV-1a.
inline uint64_t StableHash(absl::string_view data, uint64_t seed = 14695981039346656037ull) {
  uint64_t hash = seed;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// Mixes the bits of a 64-bit value (the splitmix64 finaliser): FNV of strings that differ only in
// their last byte differ only in a few bits, which would skew a rendezvous ranking.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace latchkey
