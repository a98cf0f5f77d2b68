// presence/glob.cpp: the iterative glob matcher behind peer-name lookups.
#include "presence/glob.hpp"

#include <cstddef>

namespace peerbus::detail {

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  constexpr std::size_t none = std::string_view::npos;
  std::size_t p = 0;
  std::size_t t = 0;
  // Where to resume after a mismatch: just past the latest `*`, with that star having swallowed
  // one more character of text. Retrying earlier stars is never needed: whatever they could
  // absorb, the latest star can absorb too, which is what keeps this polynomial.
  std::size_t star = none;
  std::size_t star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (star != none) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace peerbus::detail
