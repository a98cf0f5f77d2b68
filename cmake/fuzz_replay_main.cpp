// fuzz_replay_main.cpp: runs a libFuzzer target without libFuzzer (gcc builds, ctest).
//
// Usage: <target>_replay [file-or-directory...]
// Feeds every file given (directories: every regular file inside, recursively; missing paths are
// skipped), a few byte-flipped variants of each, the empty input, and a fixed set of
// pseudo-random inputs. Deterministic: the same binary and corpus always run the same inputs.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

void run_one(const std::vector<std::uint8_t>& input) {
  // Copy into an exact-size heap buffer so ASan catches reads past the end, as libFuzzer does.
  std::vector<std::uint8_t> exact(input.begin(), input.end());
  exact.shrink_to_fit();
  LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
}

std::uint64_t next(std::uint64_t& state) {  // xorshift64*: tiny, fixed, good enough here
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 2685821657736338717ULL;
}

void collect(const std::filesystem::path& path, std::vector<std::filesystem::path>& out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path, ec)) {
      if (entry.is_regular_file(ec)) out.push_back(entry.path());
    }
  } else if (std::filesystem::is_regular_file(path, ec)) {
    out.push_back(path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) collect(argv[i], files);
  std::sort(files.begin(), files.end());

  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  std::size_t runs = 0;

  run_one({});
  ++runs;

  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> input((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    run_one(input);
    ++runs;
    for (int variant = 0; variant < 64 && !input.empty(); ++variant) {
      auto mutated = input;
      mutated[next(state) % mutated.size()] ^= static_cast<std::uint8_t>(1u << (next(state) % 8));
      if (variant % 8 == 7) mutated.resize(next(state) % (mutated.size() + 1));
      run_one(mutated);
      ++runs;
    }
  }

  for (int i = 0; i < 4096; ++i) {
    std::vector<std::uint8_t> input(next(state) % 1500);
    for (auto& byte : input) byte = static_cast<std::uint8_t>(next(state));
    run_one(input);
    ++runs;
  }

  std::printf("fuzz replay: %zu corpus files, %zu inputs, no crash\n", files.size(), runs);
  return 0;
}
