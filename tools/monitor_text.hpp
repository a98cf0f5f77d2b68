// tools/monitor_text.hpp: the monitor's model as text: numbers for people, tables fitted to a
// width, the plain periodic summary. Shared by the full-screen view and the non-terminal output.
#pragma once

#include "monitor_model.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus::tools::monitor {

/// 0, 12, 999, 1.2k, 34.5k, 1.2M ...; fractions below 10 keep one decimal ("2.5").
std::string human_count(double v);
/// "0 B", "512 B", "1.2 kB", "3.4 MB" (powers of 1000).
std::string human_bytes(double v);
/// "5s", "3m02s", "1h05m", "2d03h".
std::string human_duration(std::chrono::seconds s);
/// Time since something: "0.2s", "12s", "5m03s".
std::string human_age(std::chrono::steady_clock::duration d);

/// Makes text safe for one terminal line: control characters become spaces; without `utf8`,
/// every byte outside ASCII becomes '?'.
std::string printable(std::string_view text, bool utf8);
/// Columns `text` takes, counting one per UTF-8 code point.
std::size_t text_width(std::string_view text);
/// Cuts `text` to `width` columns (the last one '~' when cut) and pads it to exactly `width`.
std::string fit(std::string_view text, std::size_t width, bool right_align = false);

struct column {
  std::string title;
  bool right = false;     ///< numbers
  std::size_t min = 3;    ///< narrowest it may be cut to
  std::size_t max = 40;   ///< widest it grows to
  int priority = 5;       ///< columns are dropped lowest first when the width cannot hold them
  bool shrink_first = false;  ///< may be cut (names, payloads); the others are only dropped
};

enum class row_style { normal, dim, alert };

struct table {
  std::vector<column> cols;
  std::vector<std::vector<std::string>> rows;
  std::vector<row_style> styles;  ///< one per row
};

/// The table as lines, header first, each at most `width` columns wide (0: no limit). When the
/// table is too wide, shrink_first columns are cut (down to their minimum), then whole columns
/// are dropped by priority; other columns are never cut, so numbers are never shown wrong.
std::vector<std::string> render(const table& t, std::size_t width);

/// What the person looking has chosen: sorting, filter, pause.
struct view_state {
  peer_sort peers_by = peer_sort::name;
  bool peers_reversed = false;
  topic_sort topics_by = topic_sort::topic;
  bool topics_reversed = false;
  std::string filter;  ///< topic pattern; empty: every topic
  bool utf8 = false;   ///< the terminal shows UTF-8
};

table peers_table(const model& m, const view_state& v, std::chrono::system_clock::time_point now_sys,
                  steady::time_point now);
table topics_table(const model& m, const view_state& v, steady::time_point now);
/// "datagrams 120/s  34.5 kB/s  total 1.2k (56.7 kB)  NACKs 3  repairs 5  dropped 2: malformed 1"
std::string bus_line(const model& m);
/// The drops by reason, "malformed 1, wrong_version 1", or "none".
std::string drops_text(const bus_totals& t);

/// One datagram as one JSON line (no newline) for `monitor --json`: receive time (µs since the
/// Unix epoch), source, size, and each frame's envelope as it travelled, or why it was dropped.
std::string datagram_json(const datagram_view& d);

/// One plain-text block (the non-terminal output): title, bus line, both tables.
std::string summary(const model& m, const view_state& v, std::string_view url,
                    std::chrono::system_clock::time_point now_sys, steady::time_point now,
                    std::size_t width = 0);

}  // namespace peerbus::tools::monitor
