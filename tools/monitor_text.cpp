// tools/monitor_text.cpp: numbers, tables and summaries of the monitor as text.
#include "monitor_text.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <numeric>

namespace peerbus::tools::monitor {

std::string human_count(double v) {
  if (v < 0) v = 0;
  if (v < 10 && v != std::floor(v)) return fmt::format("{:.1f}", v);
  if (v < 1000) return fmt::format("{:.0f}", v);
  static const char* units[] = {"k", "M", "G", "T"};
  int u = -1;
  while (v >= 1000 && u < 3) {
    v /= 1000;
    ++u;
  }
  return v < 100 ? fmt::format("{:.1f}{}", v, units[u]) : fmt::format("{:.0f}{}", v, units[u]);
}

std::string human_bytes(double v) {
  if (v < 0) v = 0;
  if (v < 1000) return fmt::format("{:.0f} B", v);
  static const char* units[] = {"kB", "MB", "GB", "TB"};
  int u = -1;
  while (v >= 1000 && u < 3) {
    v /= 1000;
    ++u;
  }
  return v < 100 ? fmt::format("{:.1f} {}", v, units[u]) : fmt::format("{:.0f} {}", v, units[u]);
}

std::string human_duration(std::chrono::seconds d) {
  long long s = d.count();
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  return fmt::format("{}d{:02}h", s / 86400, (s / 3600) % 24);
}

std::string human_age(std::chrono::steady_clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  if (s < 0) return "0.0s";
  if (s < 10) return fmt::format("{:.1f}s", s);
  return human_duration(std::chrono::seconds(static_cast<long long>(s)));
}

std::string printable(std::string_view text, bool utf8) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) out += ' ';
    else if (u >= 0x80 && !utf8) out += '?';
    else out += c;
  }
  return out;
}

std::size_t text_width(std::string_view text) {
  std::size_t n = 0;
  for (char c : text)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  return n;
}

std::string fit(std::string_view text, std::size_t width, bool right_align) {
  const std::size_t w = text_width(text);
  if (w <= width) {
    std::string pad(width - w, ' ');
    return right_align ? pad + std::string(text) : std::string(text) + pad;
  }
  if (width == 0) return {};
  // Keep width-1 code points, then the cut mark.
  std::size_t kept = 0;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
      if (kept == width - 1) break;
      ++kept;
    }
  }
  return std::string(text.substr(0, i)) + "~";
}

std::vector<std::string> render(const table& t, std::size_t width) {
  constexpr std::size_t gap = 2;
  const std::size_t n = t.cols.size();
  std::vector<std::size_t> w(n);
  std::vector<bool> shown(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t natural = text_width(t.cols[i].title);
    for (const auto& row : t.rows)
      if (i < row.size()) natural = std::max(natural, text_width(row[i]));
    w[i] = std::max(std::min(natural, t.cols[i].max), std::min(t.cols[i].min, natural));
  }
  auto total = [&] {
    std::size_t sum = 0, count = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (shown[i]) {
        sum += w[i];
        ++count;
      }
    return sum + (count > 0 ? (count - 1) * gap : 0);
  };
  if (width > 0 && total() > width) {
    // A cut name or payload still says something; a cut number says something wrong. So: cut
    // the shrink-first columns to their minimum, drop whole columns (lowest priority first,
    // never the first) until the rest fits, then give the room left back to the cut columns.
    const std::vector<std::size_t> natural = w;
    for (std::size_t i = 0; i < n; ++i)
      if (t.cols[i].shrink_first) w[i] = std::min(t.cols[i].min, w[i]);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return t.cols[a].priority < t.cols[b].priority;
    });
    for (std::size_t i : order) {
      if (total() <= width) break;
      if (i != 0) shown[i] = false;
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const std::size_t i = *it;
      const std::size_t sum = total();
      if (sum >= width) break;
      if (shown[i] && t.cols[i].shrink_first) w[i] += std::min(natural[i] - w[i], width - sum);
    }
  }
  auto line = [&](auto cell_of) {
    std::string out;
    bool first = true;
    for (std::size_t i = 0; i < n; ++i) {
      if (!shown[i]) continue;
      if (!first) out.append(gap, ' ');
      first = false;
      out += fit(cell_of(i), w[i], t.cols[i].right);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    if (width > 0 && text_width(out) > width) out = fit(out, width);
    return out;
  };
  std::vector<std::string> lines;
  lines.reserve(t.rows.size() + 1);
  lines.push_back(line([&](std::size_t i) -> std::string_view { return t.cols[i].title; }));
  for (const auto& row : t.rows)
    lines.push_back(line([&](std::size_t i) -> std::string_view {
      return i < row.size() ? std::string_view(row[i]) : std::string_view();
    }));
  return lines;
}

namespace {

const char* state_text(peer_state s) {
  switch (s) {
    case peer_state::live: return "up";
    case peer_state::left: return "left";
    case peer_state::expired: return "expired";
  }
  return "?";
}

std::string num(std::uint64_t v) { return std::to_string(v); }

}  // namespace

table peers_table(const model& m, const view_state& v, std::chrono::system_clock::time_point now_sys,
                  steady::time_point now) {
  table t;
  t.cols = {
      {"NAME", false, 6, 24, 100, true},  {"ID", false, 4, 16, 3},
      {"PID", true, 3, 8, 6},             {"HOST", false, 4, 20, 2, true},
      {"UPTIME", true, 3, 7, 4},          {"STATE", false, 4, 7, 5},
      {"MSG/S", true, 5, 7, 9},           {"BYTES/S", true, 7, 9, 8},
      {"SEQ", true, 3, 12, 7},            {"GAPS", true, 4, 8, 6},
      {"NACKS", true, 5, 8, 6},           {"REPAIRS", true, 7, 8, 6},
      {"LOST", true, 4, 8, 9},            {"HEARD", true, 5, 7, 8},
  };
  for (const peer_row* p : m.sorted_peers(v.peers_by, v.peers_reversed)) {
    std::string uptime = "-";
    if (p->started)
      uptime = human_duration(std::chrono::duration_cast<std::chrono::seconds>(now_sys - *p->started));
    t.rows.push_back({
        p->name.empty() ? "?" : printable(p->name, false),
        p->id.str(),
        p->pid > 0 ? std::to_string(p->pid) : "-",
        p->host.empty() ? "-" : printable(p->host, v.utf8),
        uptime,
        state_text(p->state),
        human_count(p->msg_rate.per_second()),
        human_bytes(p->byte_rate.per_second()),
        num(p->highest_seq),
        num(p->gaps()),
        num(p->nacks),
        num(p->repairs),
        num(p->lost()),
        p->last_heard == steady::time_point{} ? "-" : human_age(now - p->last_heard),
    });
    t.styles.push_back(p->state != peer_state::live ? row_style::dim
                       : p->lost() > 0             ? row_style::alert
                                                   : row_style::normal);
  }
  return t;
}

table topics_table(const model& m, const view_state& v, steady::time_point now) {
  table t;
  t.cols = {
      {"TOPIC", false, 8, 48, 100, true}, {"MSG/S", true, 5, 7, 9},
      {"BYTES/S", true, 7, 9, 8},         {"MSGS", true, 4, 10, 6},
      {"PUBS", true, 4, 5, 7},            {"AGE", true, 4, 7, 5},
      {"LAST PAYLOAD", false, 12, 4096, 10, true},
  };
  for (const topic_row* r : m.sorted_topics(v.topics_by, v.topics_reversed, v.filter)) {
    std::string payload = printable(r->last_payload, v.utf8);
    if (r->last_payload_cut) payload += "...";
    t.rows.push_back({printable(r->topic, false), human_count(r->msg_rate.per_second()),
                      human_bytes(r->byte_rate.per_second()), num(r->messages),
                      num(r->publishers.size()), human_age(now - r->last), std::move(payload)});
    t.styles.push_back(row_style::normal);
  }
  return t;
}

std::string drops_text(const bus_totals& t) {
  std::string out;
  for (std::size_t i = 0; i < drop_reason_count; ++i) {
    auto r = static_cast<drop_reason>(i);
    if (auto n = t.dropped(r)) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", to_string(r), n);
  }
  return out.empty() ? "none" : out;
}

std::string bus_line(const model& m) {
  const auto& t = m.totals();
  return fmt::format("datagrams {}/s  {}/s  total {} ({})  NACKs {}  repairs {}  dropped {}: {}",
                     human_count(t.datagram_rate.per_second()),
                     human_bytes(t.byte_rate.per_second()), human_count(static_cast<double>(t.datagrams)),
                     human_bytes(static_cast<double>(t.bytes)), t.nacks, t.repairs,
                     t.dropped_total(), drops_text(t));
}

namespace {

constexpr std::size_t max_raw_text = 256;

void append_string(std::string& out, std::string_view s) {
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A dropped datagram's or frame's bytes, cut, as a JSON string field.
void append_raw(std::string& out, std::string_view bytes) {
  out += ",\"text\":";
  append_string(out, bytes.substr(0, max_raw_text));
  if (bytes.size() > max_raw_text) out += ",\"text_cut\":true";
}

}  // namespace

std::string datagram_json(const datagram_view& d) {
  std::string out = "{\"t\":";
  out += std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(d.received.time_since_epoch()).count());
  out += ",\"src\":";
  append_string(out, d.source);
  out += ",\"size\":" + std::to_string(d.bytes.size());
  if (d.injected_drop) out += ",\"injected\":true";
  if (!d.ok) {
    out += ",\"ok\":false,\"reason\":\"";
    out += to_string(d.reason);
    out += "\",\"error\":";
    append_string(out, d.error);
    append_raw(out, d.bytes);
    out += "}";
    return out;
  }
  out += ",\"ok\":true,\"frames\":[";
  bool first = true;
  for (const auto& f : d.frames) {
    if (!first) out += ',';
    first = false;
    if (f.ok) {
      // Decoded frames are validated JSON objects: copied as they travelled. A body is bytes,
      // not JSON: only its size is shown (the envelope says its ctype).
      out += "{\"ok\":true,\"env\":";
      out += f.header;
      if (f.has_body) out += ",\"body\":" + std::to_string(f.body_size);
      out += "}";
    } else {
      out += "{\"ok\":false,\"reason\":\"";
      out += to_string(f.reason);
      out += "\",\"error\":";
      append_string(out, f.error);
      append_raw(out, f.text);
      out += "}";
    }
  }
  out += "]}";
  return out;
}

std::string summary(const model& m, const view_state& v, std::string_view url,
                    std::chrono::system_clock::time_point now_sys, steady::time_point now,
                    std::size_t width) {
  std::time_t tt = std::chrono::system_clock::to_time_t(now_sys);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  std::string out = fmt::format("--- peerbus monitor {} {} ---\nbus  {}\n", when, url, bus_line(m));
  auto peers = peers_table(m, v, now_sys, now);
  out += fmt::format("peers ({}, by {}{})\n", peers.rows.size(), to_string(v.peers_by),
                     v.peers_reversed ? ", reversed" : "");
  for (const auto& l : render(peers, width)) out += l + "\n";
  auto topics = topics_table(m, v, now);
  out += fmt::format("topics ({}, by {}{}{})\n", topics.rows.size(), to_string(v.topics_by),
                     v.topics_reversed ? ", reversed" : "",
                     v.filter.empty() ? std::string() : ", filter '" + v.filter + "'");
  // The payload column would make plain lines as long as the payloads: cap it.
  for (auto& row : topics.rows)
    if (row.back().size() > 60) row.back() = fit(row.back(), 60);
  for (const auto& l : render(topics, width)) out += l + "\n";
  if (m.topics_overflow() > 0)
    out += fmt::format("({} messages on topics beyond the first {} not shown)\n",
                       m.topics_overflow(), model::max_topics);
  return out;
}

}  // namespace peerbus::tools::monitor
