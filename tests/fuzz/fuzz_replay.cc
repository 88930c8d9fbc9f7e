// Stand-in for libFuzzer in ordinary builds: runs every file of the seed corpus directory given as
// argv[1], then a bounded number of deterministic mutations of each (byte flips, truncations,
// duplications), so a crash on malformed input fails CTest even without clang.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::vector<std::string> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", argv[1]);
    return 1;
  }
  std::mt19937 rng(12345);
  constexpr int kMutationsPerSeed = 2000;
  size_t runs = 0;
  for (const std::string& seed : seeds) {
    Run(seed);
    ++runs;
    for (int i = 0; i < kMutationsPerSeed; ++i) {
      std::string input = seed;
      switch (rng() % 4) {
        case 0:  // flip a few bytes
          for (int k = 0; k < 1 + static_cast<int>(rng() % 4) && !input.empty(); ++k)
            input[rng() % input.size()] = static_cast<char>(rng());
          break;
        case 1:  // truncate
          input.resize(input.empty() ? 0 : rng() % input.size());
          break;
        case 2:  // duplicate a slice
          if (!input.empty()) {
            size_t at = rng() % input.size();
            input.insert(at, input.substr(at, rng() % 64));
          }
          break;
        default:  // insert a special byte
          input.insert(input.empty() ? 0 : rng() % input.size(), 1, "\0\r\n:;@[]<>\"=/"[rng() % 13]);
      }
      Run(input);
      ++runs;
    }
  }
  std::printf("replayed %zu inputs from %zu seeds\n", runs, seeds.size());
  return 0;
}
