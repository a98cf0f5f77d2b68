// tools/record_file.cpp: writing and reading record files (JSON lines).
#include "record_file.hpp"

#include "common.hpp"

#include <nlohmann/json.hpp>

namespace peerbus::tools::record_file {

std::string header_line(std::string_view url, std::int64_t started_us,
                        const std::vector<std::string>& patterns, peer_id recorder) {
  nlohmann::json j = nlohmann::json::object();
  j["peerbus_record"] = version;
  j["url"] = std::string(url);
  j["started"] = started_us;
  j["patterns"] = patterns;
  j["recorder"] = recorder.str();
  // ordered_json is not in every Debian nlohmann; keep "peerbus_record" first by hand.
  std::string out = "{\"peerbus_record\":" + std::to_string(version);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "peerbus_record") continue;
    out += ",\"" + it.key() + "\":" + it.value().dump();
  }
  out += "}\n";
  return out;
}

std::string message_line(std::int64_t t_us, const message& m) {
  // Topics and names cannot hold '"' or '\' (wire grammar): no escaping needed. The payload is
  // copied as it travelled, never parsed and re-serialised.
  std::string line;
  line.reserve(96 + m.topic().size() + m.sender_name().size() + m.data_json().size());
  line += "{\"t\":";
  line += std::to_string(t_us);
  line += ",\"topic\":\"";
  line += m.topic();
  line += "\",\"from\":\"";
  line += m.sender().str();
  line += "\",\"name\":\"";
  line += m.sender_name();
  line += "\",\"seq\":";
  line += std::to_string(m.seq());
  line += ",\"ts\":";
  line += std::to_string(m.timestamp_us());
  if (m.is_binary()) {
    // Bytes are not JSON: the content type, the size, and the bytes as a base64 string.
    line += ",\"ctype\":";
    line += nlohmann::json(std::string(m.content_type())).dump();
    line += ",\"size\":";
    line += std::to_string(m.bytes().size());
    line += ",\"data\":\"";
    line += base64(m.bytes());
    line += "\"}\n";
    return line;
  }
  line += ",\"data\":";
  line += m.data_json();
  line += "}\n";
  return line;
}

std::string loss_line(std::int64_t t_us, const loss_event& e) {
  return "{\"t\":" + std::to_string(t_us) + ",\"lost\":" + std::to_string(e.count()) +
         ",\"from\":\"" + e.sender.str() + "\",\"name\":" + nlohmann::json(e.sender_name).dump() +
         ",\"first\":" + std::to_string(e.first) + ",\"last\":" + std::to_string(e.last) + "}\n";
}

namespace {

bool parse_object(std::string_view line, nlohmann::json& j, std::string& error) {
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 9: ..." -> from "column".
    auto pos = what.find("column");
    error = "not JSON (" + (pos == std::string::npos ? what : what.substr(pos)) + ")";
    return false;
  }
  if (!j.is_object()) {
    error = "not a JSON object";
    return false;
  }
  return true;
}

bool get_int(const nlohmann::json& j, const char* key, std::int64_t& out, std::string& error,
             bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) error = std::string("missing field '") + key + "'";
    return !required;
  }
  if (!it->is_number_integer()) {
    error = std::string("field '") + key + "' is not an integer";
    return false;
  }
  out = it->get<std::int64_t>();
  return true;
}

bool get_string(const nlohmann::json& j, const char* key, std::string& out, std::string& error,
                bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) error = std::string("missing field '") + key + "'";
    return !required;
  }
  if (!it->is_string()) {
    error = std::string("field '") + key + "' is not a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

// The payload's text as written: the writer puts "data" last, so it is the span from the first
// "data": to the closing brace. Used only when it parses to the same value; otherwise (a file
// rewritten by another tool) the value is serialised again.
std::string data_text(std::string_view line, const nlohmann::json& data) {
  constexpr std::string_view key = "\"data\":";
  auto pos = line.find(key);
  if (pos != std::string_view::npos) {
    std::string_view rest = line.substr(pos + key.size());
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t' || rest.back() == '\r'))
      rest.remove_suffix(1);
    if (!rest.empty() && rest.back() == '}') {
      rest.remove_suffix(1);
      try {
        if (nlohmann::json::parse(rest.begin(), rest.end()) == data) return std::string(rest);
      } catch (const nlohmann::json::exception&) {
        // not the span we hoped for: fall through
      }
    }
  }
  return data.dump();
}

}  // namespace

bool parse_header(std::string_view line, header& h, std::string& error) {
  nlohmann::json j;
  if (!parse_object(line, j, error)) {
    error = "no record header: " + error;
    return false;
  }
  auto it = j.find("peerbus_record");
  if (it == j.end()) {
    error = "no record header (the first line has no \"peerbus_record\"): not a peerbus record file";
    return false;
  }
  if (!it->is_number_integer()) {
    error = "\"peerbus_record\" is not an integer";
    return false;
  }
  h.version = it->get<int>();
  if (h.version < 1 || h.version > version) {
    error = "record format version " + std::to_string(h.version) + " (this peerbus reads " +
            std::to_string(version) + ")";
    return false;
  }
  std::int64_t started = 0;
  if (!get_string(j, "url", h.url, error, false) || !get_int(j, "started", started, error, false))
    return false;
  h.started = started;
  return true;
}

bool parse_entry(std::string_view line, entry& e, std::string& error) {
  e = entry{};
  nlohmann::json j;
  if (!parse_object(line, j, error)) return false;
  if (j.contains("topic")) {
    e.k = entry::kind::message;
    if (!get_int(j, "t", e.t, error, true) || !get_string(j, "topic", e.topic, error, true) ||
        !get_string(j, "from", e.from, error, false) || !get_string(j, "name", e.name, error, false) ||
        !get_int(j, "ts", e.ts, error, false))
      return false;
    if (e.topic.empty()) {
      error = "empty topic";
      return false;
    }
    std::int64_t seq = 0;
    if (!get_int(j, "seq", seq, error, false)) return false;
    e.seq = static_cast<std::uint64_t>(seq);
    auto d = j.find("data");
    if (d == j.end()) {
      error = "missing field 'data'";
      return false;
    }
    e.data = data_text(line, *d);
    if (!get_string(j, "ctype", e.ctype, error, false)) return false;
    if (!e.ctype.empty() && !d->is_string()) {
      error = "a binary message's 'data' is not a base64 string";
      return false;
    }
    return true;
  }
  if (j.contains("lost")) {
    e.k = entry::kind::loss;
    std::int64_t lost = 0;
    if (!get_int(j, "t", e.t, error, true) || !get_int(j, "lost", lost, error, true) ||
        !get_string(j, "from", e.from, error, false) || !get_string(j, "name", e.name, error, false))
      return false;
    e.lost = static_cast<std::uint64_t>(lost);
    return true;
  }
  // A kind of line this version does not know (a later version's, or a second header when files
  // were concatenated): skipped.
  e.k = entry::kind::other;
  return true;
}

reader::status reader::read_line(std::string& out) {
  offset_ = next_offset_;
  out.clear();
  if (!std::getline(in_, out)) {
    if (in_.bad()) {
      ++line_;
      error_ = "read error";
      return status::damaged;
    }
    return status::end;
  }
  ++line_;
  const bool had_newline = !in_.eof();
  next_offset_ += out.size() + (had_newline ? 1 : 0);
  if (!had_newline) {
    error_ = "line cut off (no newline at the end of the file)";
    return status::damaged;
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return status::ok;
}

reader::status reader::read_header(header& h) {
  auto s = read_line(buf_);
  if (s == status::end) {
    ++line_;
    error_ = "empty file: no record header";
    return status::damaged;
  }
  if (s != status::ok) return s;
  if (!parse_header(buf_, h, error_)) return status::damaged;
  return status::ok;
}

reader::status reader::next(entry& e) {
  for (;;) {
    auto s = read_line(buf_);
    if (s != status::ok) return s;
    if (buf_.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are fine
    if (!parse_entry(buf_, e, error_)) return status::damaged;
    return status::ok;
  }
}

}  // namespace peerbus::tools::record_file
