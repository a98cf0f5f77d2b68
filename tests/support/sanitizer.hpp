// support/sanitizer.hpp: whether this test binary runs under AddressSanitizer, for tests whose
// counts, timings or RSS bounds must be scaled or skipped there.
#pragma once

namespace peerbus::test {

// ASan runs several times slower and inflates RSS (quarantine, shadow memory): scale message
// counts down and assert on counters rather than RSS when this is true.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

}  // namespace peerbus::test
