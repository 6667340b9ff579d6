// A portable, counter-based random number generator for sampling.
//
// Tandem promises that a request with a given seed draws the same tokens on
// every run and every machine. The standard library's distributions are
// implementation-defined, so the sampler uses this generator instead: the
// n-th number of a stream is a pure function of (seed, n), built from the
// SplitMix64 finalizer (Steele, Lea and Flood, 2014). Because the state is
// just the seed and a position, a sequence can move between workers (the
// prefill worker draws its first token, a decode worker continues at
// position 1) and still see exactly the stream it would have seen on one
// worker.
//
// The stream is part of Tandem's reproducibility contract: changing the
// constants or the mixing changes every seeded output. random_test.cc pins
// the first values of a few streams.
#ifndef TANDEM_ENGINE_RANDOM_H_
#define TANDEM_ENGINE_RANDOM_H_

#include <cstdint>

namespace tandem {

// Bijective 64-bit mixing function (the SplitMix64 output finalizer): every
// input bit affects every output bit. Pure; thread-safe.
constexpr uint64_t MixBits64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A stream of 64-bit pseudo-random numbers addressed by position.
//
// Number n of the stream for `seed` is
//   MixBits64(key + (n + 1) * kGamma),  key = MixBits64(seed ^ kSeedSalt),
// a SplitMix64 sequence started from a hashed seed. Hashing the seed keeps
// streams of nearby seeds (0, 1, 2, ...) from being shifted copies of each
// other. Not cryptographically secure.
//
// Thread-compatible: a value type with no shared state; copies are
// independent streams at the same position.
class CounterRng {
 public:
  // A stream for `seed` whose next draw is number `position`.
  explicit constexpr CounterRng(uint64_t seed, uint64_t position = 0)
      : seed_(seed), key_(MixBits64(seed ^ kSeedSalt)), position_(position) {}

  // Number `position` of the stream for `seed`, without any state.
  static constexpr uint64_t At(uint64_t seed, uint64_t position) {
    return MixBits64(MixBits64(seed ^ kSeedSalt) + (position + 1) * kGamma);
  }

  // Returns the number at the current position and advances by one.
  constexpr uint64_t NextU64() {
    ++position_;
    return MixBits64(key_ + position_ * kGamma);
  }

  // Returns a double uniformly distributed on [0, 1) built from the top 53
  // bits of NextU64(), and advances by one. Exact: every value is a multiple
  // of 2^-53.
  constexpr double NextDouble() {
    return static_cast<double>(NextU64() >> 11) * 0x1.0p-53;
  }

  uint64_t seed() const { return seed_; }
  // The number of draws taken so far from the start of the stream, i.e. the
  // index of the next draw.
  uint64_t position() const { return position_; }
  // Moves to draw `position`; later draws are those of a fresh stream that
  // took `position` draws.
  void set_position(uint64_t position) { position_ = position; }

 private:
  // 2^64 / golden ratio, odd: the SplitMix64 increment.
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  // First 64 bits of the fractional part of sqrt(2); any fixed constant
  // would do, this one is part of the stream's definition.
  static constexpr uint64_t kSeedSalt = 0x6A09E667F3BCC908ull;

  uint64_t seed_;
  uint64_t key_;
  uint64_t position_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_RANDOM_H_
